"""A small real collection for the web tests, made by the snapshot pipeline
from a loopback server: two captures of an essay (then an unchanged
re-check), a French text, and a hostile page whose title, author, text, URL
and bag-info hold markup and scripts; audited (one bag made to fail its
check) and mirrored to a directory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import LoopbackServer

from archiver.cli import app

runner = CliRunner()
SECRET = "TOP-SECRET-OUTSIDE-THE-COLLECTION"

ESSAY_V1 = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>On Keeping Things</title>
<meta name="author" content="Ada Tester"></head><body><article><h1>On Keeping Things</h1>
<p>An archive keeps what it is given, exactly as it was given, typos and all.</p>
<p>Nothing in a collection is ever silently changed: every claim the tool makes is true.</p>
<p>The third paragraph stays the same in both captures, a quiet witness.</p></article></body></html>"""
ESSAY_V2 = ESSAY_V1.replace("typos and all", "typos, errors and all").replace(
    "a quiet witness.</p>", "a quiet witness.</p><p>A new closing paragraph arrived in the second capture.</p>")
FRENCH = """<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>L'entraide</title>
<meta name="author" content="Élise Reclus"></head><body><article><h1>L'entraide</h1>
<p>L'entraide est un facteur de l'évolution, disait-on déjà au siècle dernier.</p>
<p>Ce texte est une archive de démonstration, écrit pour les essais de l'interface.</p></article></body></html>"""
HOSTILE_TITLE = '<script>alert("title")</script>"onerror=alert(1)'
HOSTILE_AUTHOR = '<img src=x onerror=alert(2)>'


def hostile_page(sentinel: str) -> str:
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{HOSTILE_TITLE.replace('<', '&lt;')}</title>
<meta name="author" content="{HOSTILE_AUTHOR.replace('<', '&lt;')}">
<script>fetch("{sentinel}/script-fetch"); new Image().src = "{sentinel}/script-image"; document.title = "SCRIPT RAN";</script>
<link rel="stylesheet" href="{sentinel}/style.css"></head>
<body><article><h1>{HOSTILE_TITLE.replace('<', '&lt;')}</h1>
<p>This text talks about &lt;script&gt;alert(3)&lt;/script&gt; and "onerror=alert(4) and javascript:alert(5) as plain words.</p>
<p>A link: <a href="javascript:alert(6)">click me</a>, and an image <img src="{sentinel}/image.png" alt="img">.</p>
</article><script>document.body.setAttribute("data-ran", "yes"); fetch("{sentinel}/body-fetch");</script></body></html>"""


@dataclass
class WebCollection:
    root: Path
    mirror: Path
    essay_url: str
    french_url: str
    hostile_url: str
    essay_old: str
    essay_new: str
    french: str
    hostile: str
    sentinel: LoopbackServer
    origin: LoopbackServer | None = None


def invoke(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.stdout.strip(), result.output
    return json.loads(result.stdout)


def snap(root: Path, url: str, *extra: str) -> dict:
    return invoke("snapshot", url, "--root", str(root), "--delay", "0", "--retries", "0", "--timeout", "5", *extra)


def make_collection(base: Path, server: LoopbackServer, sentinel: LoopbackServer) -> WebCollection:
    root, mirror = base / "bags", base / "mirror"
    essay = server.add("/essays/on-keeping-things", ESSAY_V1)
    french = server.add("/textes/entraide", FRENCH)
    server.add("/hostile", hostile_page(sentinel.base))
    hostile = server.url('/hostile?q="><script>alert(7)</script>')
    first = snap(root, essay, "--organization", 'Example Library <script>alert("org")</script>')
    server.add("/essays/on-keeping-things", ESSAY_V2)
    second = snap(root, essay)
    snap(root, essay)  # unchanged re-check
    fr = snap(root, french)
    bad = snap(root, hostile, "--organization", '"><img src=x onerror=alert(8)>', "--collection", "javascript:alert(9)")
    names = [s["sources"][0]["bag"] for s in (first, second, fr, bad)]
    assert all(names), (first, second, fr, bad)
    invoke("audit", "--root", str(root))
    # The French bag's bag-info gains a line after its check: the next audit fails it.
    with open(root / names[2] / "bag-info.txt", "a", encoding="utf-8") as f:
        f.write("Internal-Sender-Description: changed after bagging\n")
    invoke("audit", "--root", str(root), "--max-age", "0s")
    invoke("mirror", str(root), str(mirror))
    return WebCollection(root, mirror, essay, french, hostile, names[0], names[1], names[2], names[3], sentinel)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """The collection, with a secret file beside its root (nothing may reach it)."""
    server, sentinel = LoopbackServer(), LoopbackServer()
    base = tmp_path_factory.mktemp("web")
    (base / "secret.txt").write_text(SECRET)
    made = make_collection(base, server, sentinel)
    made.origin = server
    yield made
    server.close()
    sentinel.close()
