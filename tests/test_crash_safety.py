"""Crash safety: SIGKILL the real CLI at many random moments, then look.

``archiver snapshot`` (a batch served by a loopback server) and ``archiver
mirror ROOT DIR`` are each started as a subprocess in its own process group
and killed with SIGKILL — the whole group, as a power cut or the OOM killer
would, fork-pool workers included — at ≥ 20 moments drawn from a seeded
random generator (``CRASH_SEED`` in the environment overrides the seed; a
failure message names it, so any failure reproduces). After every kill:

- every bag folder visible under its final name is complete and valid
  (bagit-python, and ``archiver.bagit.verify`` in full mode);
- every ``capture`` success event names a bag that exists (events are
  written after the bag's rename, never before);
- the event log parses; a torn line could only be the last one, and is
  reported in ``EventLogRead.torn``, never fatal;
- the catalogue (SQLite) passes ``PRAGMA integrity_check``;
- for the mirror: every bag under its final name at the target is byte-for-byte
  the source's, and so is every bag with a receipt.

Then the next run removes the leftovers and completes the batch.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import bagit
import pytest

from archiver.collection.root import list_bag_dirs
from archiver.durable import TMP_PREFIX
from archiver.collection.events import append_event, Event, events_path, read_events
from archiver.bagit.verify import verify_bag
from conftest import LoopbackServer
from s3fixture import make_bags

REPO = Path(__file__).resolve().parent.parent
SEED = int(os.environ.get("CRASH_SEED", "20261125"))
KILLS = 20
BAGS = 30
PAGES = 16  # >= snapshot.PROCESS_POOL_MIN: on 2+ cores the fork pool of bag builders is killed too


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "archiver.cli", *args]


# A "zygote": one Python process that has already imported archiver (single-threaded)
# and forks a fresh process per run, which calls the real CLI entry point with the
# given arguments. It saves the ~1 s of imports per run, so 20+ kills fit in the
# time budget; nothing is written during imports, so no crash moment is lost.
ZYGOTE = r"""
import json, os, signal, sys
import archiver.cli, archiver.capture.snapshot, archiver.replication, archiver.bagit.verify, archiver.collection.catalog
try:  # Linux: orphaned grandchildren (fork-pool workers of a killed run) come to us...
    import ctypes
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except Exception:
    pass
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # ...and every child is reaped automatically
for line in sys.stdin:
    args = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        code = 0
        try:
            archiver.cli.app(args, prog_name="archiver")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            code = 1
        os._exit(code)
    sys.stdout.write(f"{pid}\n")
    sys.stdout.flush()
"""


class Zygote:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], cwd=REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def start(self, args: list[str]) -> int:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(args) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    yield z
    z.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def run_and_kill(zygote: Zygote, args: list[str], ready: Callable[[], bool], then: float,
                 limit: float = 60.0) -> bool:
    """Run ``archiver ARGS`` in a fresh process group; once ``ready()`` is true, wait
    ``then`` seconds more and SIGKILL the whole group (fork-pool workers included).
    True if it was still running when killed.

    Kill moments are drawn relative to progress (so many, not a few, land between
    the first and the last bag whatever the machine's speed), plus a random delay."""
    pid = zygote.start(args)
    deadline = time.monotonic() + limit
    while alive(pid) and not ready() and time.monotonic() < deadline:
        time.sleep(0.002)
    until = time.monotonic() + then
    while alive(pid) and time.monotonic() < until:
        time.sleep(0.002)
    if not alive(pid):
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    for _ in range(500):  # wait until the whole group is gone
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.002)
    else:  # pragma: no cover
        raise AssertionError(f"process group {pid} survived SIGKILL")
    return True


def count_new(folder: Path, before: set[str], suffix: str = "") -> Callable[[], int]:
    """How many entries not starting with '.' (and not ending with ``suffix``, if given)
    appeared in ``folder`` since ``before`` was taken."""
    def count() -> int:
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return 0
        return sum(1 for n in names if not n.startswith(".") and n not in before
                   and not (suffix and n.endswith(suffix)))
    return count


def kill_moment(rng: random.Random, remaining: int) -> tuple[int, float]:
    """(bags to wait for, extra seconds): sometimes during start-up or fetching
    (0 bags, up to a second), mostly somewhere between two bags."""
    if remaining <= 0 or rng.random() < 0.2:
        return 0, rng.uniform(0.0, 1.0)
    return rng.randrange(0, remaining), rng.uniform(0.0, 0.04)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def check_bag(bag_dir: Path, context: str) -> None:
    try:
        bagit.Bag(str(bag_dir)).validate()
    except bagit.BagError as exc:  # pragma: no cover - the failure message is the point
        raise AssertionError(f"{context}: {bag_dir.name} is not a valid bag: {exc}") from exc
    report = verify_bag(bag_dir)
    assert report.valid, f"{context}: {bag_dir.name}: {report.problems}"


class LogWatch:
    """Checks the event log after each kill: it parses, and a torn line is only ever the last."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.healed_torn: set[int] = set()
        self.torn_seen = 0

    def check(self, context: str) -> list[Event]:
        log = read_events(self.root)  # never raises on a torn line
        path = events_path(self.root)
        raw = path.read_bytes() if path.exists() else b""
        last_line = raw.rstrip(b"\n").count(b"\n") + 1 if raw.strip() else 0
        new = set(log.torn) - self.healed_torn
        assert new <= {last_line}, f"{context}: torn lines {sorted(new)} not at the end ({last_line})"
        if new:
            assert not raw.endswith(b"\n")
            self.torn_seen += 1
        self.healed_torn |= set(log.torn)
        return log.events


def catalogue_ok(root: Path, context: str) -> None:
    catalogue = root / ".archiver" / "catalog.sqlite"
    if catalogue.exists():
        with sqlite3.connect(catalogue) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok", context


# -- snapshot -------------------------------------------------------------------------------------

class ChangingSite:
    """PAGES essays whose words change with ``generation``, so that every run has bags to write."""

    def __init__(self) -> None:
        self.server = LoopbackServer()
        # A killed client makes the server's write fail: expected, and not worth a traceback.
        self.server.httpd.handle_error = lambda request, address: None
        self.generation = 0
        self.server.add("/robots.txt", "User-agent: *\nAllow: /\n", content_type="text/plain")
        self.urls = []
        for i in range(PAGES):
            path = f"/essays/essay-{i:02d}"
            self.server.routes[path] = self._handler(i)
            self.urls.append(self.server.url(path))

    def marker(self, i: int) -> str:
        return f"Essay {i} in its revision number {self.generation}."

    def _handler(self, i: int):
        def handle(handler) -> None:
            time.sleep(0.005)  # a little latency, as the web has
            body = (f"<html><head><title>Essay {i}</title></head><body><article><h1>Essay {i}</h1>"
                    f"<p>{self.marker(i)}</p><p>{'Some words of the essay follow here. ' * 40}</p>"
                    f"</article></body></html>").encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        return handle


@pytest.mark.slow
def test_snapshot_survives_sigkill_at_random_moments(tmp_path: Path, zygote: Zygote) -> None:
    site = ChangingSite()
    rng = random.Random(SEED)
    root = tmp_path / "bags"
    args = cli("snapshot", *site.urls, "--root", str(root), "--delay", "0", "--retries", "0", "--timeout", "5")
    try:
        first = subprocess.run(args + ["--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["captured"] == PAGES
        checked = {b.name for b in list_bag_dirs(root)}
        for name in checked:
            check_bag(root / name, "uninterrupted run")
        watch = LogWatch(root)
        watch.check("uninterrupted run")

        kills = mid_batch = with_leftovers = 0
        attempts = 0
        while kills < KILLS:
            attempts += 1
            assert attempts < KILLS * 3, "runs keep finishing before the kill"
            site.generation += 1
            wait_for, then = kill_moment(rng, PAGES)
            context = (f"kill {kills + 1}: after {wait_for} new bags + {then:.3f}s "
                       f"(generation {site.generation}, CRASH_SEED={SEED})")
            new_bags = count_new(root, set(os.listdir(root)))
            killed = run_and_kill(zygote, args[3:], lambda: new_bags() >= wait_for, then)
            kills += killed
            visible = {p.name for p in root.iterdir() if not p.name.startswith(".")}
            bags = {b.name for b in list_bag_dirs(root)}
            assert visible == bags, f"{context}: folders that are not bags: {sorted(visible - bags)}"
            assert checked <= bags, f"{context}: bags disappeared: {sorted(checked - bags)}"
            new = bags - checked
            for name in sorted(new):
                check_bag(root / name, context)
            checked |= new
            if killed and 0 < len(new) < PAGES:
                mid_batch += 1
            with_leftovers += any(p.name.startswith(TMP_PREFIX) for p in root.iterdir())
            events = watch.check(context)
            for event in events:
                if event.type == "capture" and event.outcome == "success":
                    assert event.bag in bags, f"{context}: event for a bag that is not there: {event.bag}"
            catalogue_ok(root, context)
        # Not vacuous: many kills landed between the first and the last bag of a batch.
        assert mid_batch >= KILLS // 2, f"only {mid_batch} of {kills} kills landed mid-batch"

        site.generation += 1
        final = subprocess.run(args + ["--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
        document = json.loads(final.stdout)
        assert document["captured"] == PAGES and document["failed"] == 0
        assert not [p for p in root.iterdir() if p.name.startswith(TMP_PREFIX)], "leftovers were not removed"
        for source in document["sources"]:
            text = (root / source["bag"] / "data" / "text.txt").read_text()
            i = int(source["source"].rsplit("-", 1)[1])
            assert site.marker(i) in text
        final_events = watch.check("final run")
        logged = {e.bag for e in final_events if e.type == "capture" and e.outcome == "success"}
        assert {b.name for b in list_bag_dirs(root)} <= logged, "every bag has its capture event"
        verify = subprocess.run(cli("verify", str(root), "--json"), cwd=REPO, capture_output=True, text=True,
                                timeout=120)
        assert verify.returncode == 0, verify.stdout[-2000:]
        assert len(json.loads(verify.stdout)["bags"]) == len(list_bag_dirs(root))
        audit = subprocess.run(cli("audit", "--root", str(root), "--json"), cwd=REPO, capture_output=True,
                               text=True, timeout=120)
        assert audit.returncode == 0, audit.stdout[-2000:]  # no bag failed, none the log knows is missing
        assert not json.loads(audit.stdout)["missing"]
        # Every bag is in the catalogue, even those whose run was killed before indexing them...
        assert catalogued_names(root) == {b.name for b in list_bag_dirs(root)}
        # ...and the catalogue, being derived, can always be rebuilt to match the bags.
        rebuilt = subprocess.run(cli("catalog", "rebuild", "--root", str(root)), cwd=REPO, capture_output=True,
                                 text=True, timeout=120)
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert catalogued_names(root) == {b.name for b in list_bag_dirs(root)}
        print(f"snapshot: {kills} kills, {mid_batch} mid-batch, {with_leftovers} left .tmp-* folders, "
              f"{watch.torn_seen} torn log lines, {len(list_bag_dirs(root))} bags")
    finally:
        site.server.close()


def catalogued_names(root: Path) -> set[str]:
    listed = subprocess.run(cli("list", "--root", str(root), "--json"), cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    return {b["name"] for b in json.loads(listed.stdout)["bags"]}


@pytest.mark.slow
def test_catalogue_lists_a_bag_whose_indexing_was_cut_short(tmp_path: Path) -> None:
    """The state a SIGKILL leaves between ``append_event`` and ``catalog_add_bag``."""
    site = ChangingSite()
    root = tmp_path / "bags"
    try:
        args = cli("snapshot", site.urls[0], "--root", str(root), "--delay", "0", "--json")
        first = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        [captured] = list_bag_dirs(root)
        # The crashed run's bag: complete, renamed into place, its capture event logged; not indexed.
        cut_short = root / "essay-01-20261125T093000Z"
        shutil.copytree(captured, cut_short)
        event = [e for e in read_events(root).events if e.bag == captured.name][0]
        append_event(root, Event(type="capture", outcome="success", bag=cut_short.name,
                                 detail={**event.detail, "url": site.urls[1], "final_url": site.urls[1]}))
        site.generation += 1
        second = subprocess.run(cli("snapshot", site.urls[2], "--root", str(root), "--delay", "0"),
                                cwd=REPO, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        assert cut_short.name in catalogued_names(root)
    finally:
        site.server.close()


@pytest.mark.slow
def test_a_bag_whose_capture_event_was_cut_short_is_recorded_by_the_next_run(tmp_path: Path) -> None:
    """The state a SIGKILL leaves between a bag's rename and its ``capture`` event: a complete
    bag the log does not know. The next run records it (marked as recovered), so it has its
    provenance event, is catalogued, and counts as the last capture of its URL."""
    site = ChangingSite()
    root = tmp_path / "bags"
    try:
        first = subprocess.run(cli("snapshot", site.urls[0], "--root", str(root), "--delay", "0", "--json"),
                               cwd=REPO, capture_output=True, text=True, timeout=60)
        assert first.returncode == 0, first.stderr
        [captured] = list_bag_dirs(root)
        unrecorded = root / "essay-00-20261125T093000Z"
        shutil.copytree(captured, unrecorded)
        metadata = json.loads((unrecorded / "data" / "metadata.json").read_text())
        second = subprocess.run(cli("snapshot", site.urls[1], "--root", str(root), "--delay", "0"), cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        recovered = [e for e in read_events(root).events if e.bag == unrecorded.name]
        assert len(recovered) == 1 and recovered[0].type == "capture" and recovered[0].outcome == "success"
        assert recovered[0].detail["url"] == metadata["url"]
        assert recovered[0].detail["text_sha256"] == metadata["text_sha256"]
        assert "recovered" in recovered[0].detail
        assert unrecorded.name in catalogued_names(root)
        third = subprocess.run(cli("snapshot", site.urls[2], "--root", str(root), "--delay", "0"), cwd=REPO,
                               capture_output=True, text=True, timeout=60)
        assert third.returncode == 0, third.stderr
        assert len([e for e in read_events(root).events if e.bag == unrecorded.name]) == 1, "recorded once"
        # A recovered bag older than the URL's latest capture does not become its "last capture".
        site.generation += 1
        newer = subprocess.run(cli("snapshot", site.urls[0], "--root", str(root), "--delay", "0", "--json"),
                               cwd=REPO, capture_output=True, text=True, timeout=60)
        assert json.loads(newer.stdout)["captured"] == 1
        older = root / "essay-00-20261125T080000Z"
        shutil.copytree(captured, older)  # as if a slower, killed run had left it
        again = subprocess.run(cli("snapshot", site.urls[0], "--root", str(root), "--delay", "0", "--json"),
                               cwd=REPO, capture_output=True, text=True, timeout=60)
        assert json.loads(again.stdout)["unchanged"] == 1, again.stdout
    finally:
        site.server.close()


@pytest.mark.slow
def test_a_concurrent_run_leaves_a_live_writers_temporary_folder_alone(tmp_path: Path) -> None:
    """Two runs on one root (a cron job and a colleague): the second run's clean-up removes
    what crashed runs left, never the folder a live run is building a bag in."""
    site = ChangingSite()
    root = tmp_path / "bags"
    try:
        assert subprocess.run(cli("snapshot", site.urls[0], "--root", str(root), "--delay", "0"), cwd=REPO,
                              capture_output=True, timeout=60).returncode == 0
        crashed = root / f"{TMP_PREFIX}crashed-run"
        (crashed / "data").mkdir(parents=True)
        live_writer = subprocess.Popen(
            [sys.executable, "-c", "import sys; from archiver.durable import make_temp_dir; "
             f"print(make_temp_dir(__import__('pathlib').Path({str(root)!r}), 'live'), flush=True); "
             "sys.stdin.read()"], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            live = Path(live_writer.stdout.readline().strip())
            assert live.is_dir() and live.name.startswith(f"{TMP_PREFIX}live-")
            second = subprocess.run(cli("snapshot", site.urls[1], "--root", str(root), "--delay", "0"), cwd=REPO,
                                    capture_output=True, text=True, timeout=60)
            assert second.returncode == 0, second.stderr
            assert not crashed.exists(), "a crashed run's leftover is removed"
            assert live.is_dir(), "a live run's temporary folder was removed under it"
        finally:
            live_writer.stdin.close()
            live_writer.wait(timeout=10)
        third = subprocess.run(cli("snapshot", site.urls[2], "--root", str(root), "--delay", "0"), cwd=REPO,
                               capture_output=True, text=True, timeout=60)
        assert third.returncode == 0, third.stderr
        assert not live.exists(), "once its writer is gone, the folder is a leftover like any other"
    finally:
        site.server.close()


@pytest.mark.slow
def test_torn_last_line_of_the_event_log_is_tolerated_reported_and_kept(tmp_path: Path) -> None:
    """What a crash in the middle of a write would leave: half a JSON line, no newline."""
    site = ChangingSite()
    root = tmp_path / "bags"
    try:
        args = cli("snapshot", *site.urls[:2], "--root", str(root), "--delay", "0", "--json")
        assert subprocess.run(args, cwd=REPO, capture_output=True, timeout=60).returncode == 0
        path = events_path(root)
        whole = path.read_bytes()
        torn = b'{"id": "0b6d", "type": "capture", "time": "2026-11-25T09:'
        with open(path, "ab") as f:
            f.write(torn)
        assert read_events(root).torn == [whole.count(b"\n") + 1]
        site.generation += 1
        rerun = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert rerun.returncode == 0, rerun.stderr
        assert json.loads(rerun.stdout)["captured"] == 2
        log = read_events(root)
        assert log.torn == [whole.count(b"\n") + 1], "reported, and only that line"
        assert path.read_bytes().startswith(whole + torn + b"\n"), "append-only: the torn bytes are kept"
        assert sum(e.outcome == "success" for e in log.events) == 4
        append_event(root, Event(type="validation", outcome="success", bag=None))
        assert read_events(root).events[-1].type == "validation"
        for verb in (["audit", "--root", str(root)], ["list", "--root", str(root)],
                     ["history", site.urls[0], "--root", str(root)]):
            result = subprocess.run(cli(*verb), cwd=REPO, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0 and "Traceback" not in result.stderr, (verb, result.stderr)
    finally:
        site.server.close()


# -- mirror to a directory ----------------------------------------------------------------------------

def check_target(source: Path, target: Path, context: str) -> int:
    """Every bag under its final name at the target is the source's, byte for byte; so is every
    bag with a receipt. Returns how many bags are complete there."""
    receipts_dir = target / ".archiver" / "receipts"
    receipts = {p.stem for p in receipts_dir.glob("*.json")} if receipts_dir.is_dir() else set()
    finals = {p.name for p in target.iterdir() if not p.name.startswith(".") and not p.name.endswith(".partial")}
    assert receipts <= finals, f"{context}: receipts for bags that are not there: {sorted(receipts - finals)}"
    for name in finals:
        assert (source / name).is_dir(), f"{context}: {name} is not a source bag"
        assert tree(target / name) == tree(source / name), f"{context}: {name} differs from the source"
    for log_root in (source, target):
        read_events(log_root)  # parses
    return len(finals)


@pytest.mark.slow
def test_directory_mirror_survives_sigkill_at_random_moments(tmp_path: Path, zygote: Zygote) -> None:
    source = tmp_path / "bags"
    make_bags(source, BAGS, size=20_000)
    rng = random.Random(SEED + 1)
    targets: list[Path] = []
    kills = mid_way = 0
    attempts = 0
    while kills < KILLS:
        attempts += 1
        assert attempts < KILLS * 3, "runs keep finishing before the kill"
        complete = (check_target(source, targets[-1], "before a run") if targets[-1].is_dir() else 0) \
            if targets else BAGS
        if complete == BAGS:  # the last target is whole: start another
            targets.append(tmp_path / f"copy-{len(targets)}")
            complete = 0
        target = targets[-1]
        wait_for, then = kill_moment(rng, BAGS - complete)
        context = f"mirror kill {kills + 1} into {target.name}: after {wait_for} bags + {then:.3f}s (CRASH_SEED={SEED})"
        before = set(os.listdir(target)) if target.is_dir() else set()
        finished = count_new(target, before, suffix=".partial")
        killed = run_and_kill(zygote, ["mirror", str(source), str(target)], lambda: finished() >= wait_for, then)
        kills += killed
        complete = check_target(source, target, context) if target.is_dir() else 0
        mid_way += killed and 0 < complete < BAGS
    assert mid_way >= KILLS // 2, f"only {mid_way} of {kills} kills landed mid-way"
    for target in targets:
        result = subprocess.run(cli("mirror", str(source), str(target), "--json"), cwd=REPO,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["failed"] == 0 and summary["mirrored"] + summary["present"] == BAGS
        assert check_target(source, target, f"after resuming {target.name}") == BAGS
        assert not list(target.glob("*.partial")), "the resumed mirror left partial bags"
        receipts = {p.stem for p in (target / ".archiver" / "receipts").glob("*.json")}
        assert receipts == {b.name for b in list_bag_dirs(source)}
    print(f"mirror: {kills} kills, {mid_way} mid-way, {len(targets)} targets")



# -- fsync before rename ------------------------------------------------------------------------------

class SyncSpy:
    """Records, in order, every fsync (by the path its descriptor names) and every rename."""

    def __init__(self, monkeypatch) -> None:
        self.log: list[tuple[str, ...]] = []
        real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

        def fsync(fd: int) -> None:
            self.log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
            real_fsync(fd)

        def rename(src, dst, *args, **kwargs) -> None:
            self.log.append(("rename", os.path.abspath(src), os.path.abspath(dst)))
            real_rename(src, dst, *args, **kwargs)

        def replace(src, dst, *args, **kwargs) -> None:
            self.log.append(("rename", os.path.abspath(src), os.path.abspath(dst)))
            real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(os, "replace", replace)
        # The directory mirror may make a whole bag durable with one syncfs(2) (Linux).
        from archiver.replication import directory
        real_syncfs = getattr(directory, "_SYNCFS", None)
        if real_syncfs is not None:
            def syncfs(fd: int) -> int:
                self.log.append(("syncfs", os.readlink(f"/proc/self/fd/{fd}")))
                return real_syncfs(fd)
            monkeypatch.setattr(directory, "_SYNCFS", syncfs)

    def check(self) -> list[str]:
        """Every file and folder published by a rename was fsynced before it (under this
        name or one it was renamed from); a renamed folder's parent is fsynced after it.
        Returns the renames checked."""
        checked = []
        synced: set[str] = set()
        whole: set[str] = set()  # folders a syncfs(2) made durable with everything below them
        for index, entry in enumerate(self.log):
            if entry[0] == "fsync":
                synced.add(entry[1])
                continue
            if entry[0] == "syncfs":
                whole.add(entry[1])
                continue
            _, src, dst = entry
            if os.path.isdir(dst):
                for dirpath, _dirs, files in os.walk(dst):
                    for name in [*files, ""]:
                        published = os.path.join(dirpath, name).rstrip("/")
                        original = src + published[len(dst):]
                        assert original in synced or any(original == w or original.startswith(w + "/")
                                                          for w in whole), \
                            f"{original} was not fsynced before its rename"
                after = {e[1] for e in self.log[index + 1:] if e[0] == "fsync"}
                assert os.path.dirname(dst) in after, f"the folder holding {dst} was not fsynced after the rename"
                synced |= {dst + p[len(src):] for p in synced if p == src or p.startswith(src + "/")}
            else:
                assert src in synced, f"{src} was not fsynced before its rename to {dst}"
                synced.add(dst)
            checked.append(dst)
        return checked


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)")
def test_bags_and_mirrored_bags_are_fsynced_before_their_rename(tmp_path: Path, monkeypatch) -> None:
    from archiver.bagit.write import write_bag
    from archiver.replication import DirectoryTarget, mirror_collection

    root = tmp_path / "bags"
    root.mkdir()
    spy = SyncSpy(monkeypatch)
    bag = write_bag(root, "essay-20261125T093000Z", {"text.txt": b"Title: T\n\nText.\n",
                                                     "attachments/a.pdf": b"%PDF"}, [("Source-URL", "u")])
    append_event(root, Event(type="capture", outcome="success", bag=bag.name))
    assert spy.log[-1] == ("fsync", str(events_path(root))), "the event line is fsynced"
    assert str(bag) in spy.check()
    spy.log.clear()
    target = tmp_path / "copy"
    report = mirror_collection(root, DirectoryTarget(target), workers=1)
    assert report.ok
    assert str(target / bag.name) in spy.check()
    # repair swaps a staged replacement in: it too must be on disk before the swap
    from archiver.replication.repair import repair
    damaged = target / bag.name / "data" / "text.txt"
    damaged.write_bytes(damaged.read_bytes().upper())
    spy.log.clear()
    repaired = repair(target, root)
    assert repaired.ok and damaged.read_bytes() == (bag / "data" / "text.txt").read_bytes()
    assert str(damaged) in spy.check()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)")
def test_a_capture_record_is_fsynced_before_its_no_replace_rename(tmp_path: Path, monkeypatch) -> None:
    """A capture's bag is built in a staging folder and moved to a free name with
    renameat2(RENAME_NOREPLACE): everything is on disk before that rename, the root after."""
    from archiver.collection import record as record_module

    root = tmp_path / "bags"
    root.mkdir()
    spy = SyncSpy(monkeypatch)
    real = record_module.rename_no_replace

    def logged(src: Path, dst: Path) -> None:
        spy.log.append(("rename", os.path.abspath(src), os.path.abspath(dst)))
        real(src, dst)

    monkeypatch.setattr(record_module, "rename_no_replace", logged)
    record = record_module.CaptureRecord.new({"url": "https://example.org/e", "retrieved": "2026-11-25T09:30:00Z"},
                                             b"Title: T\n\nText.\n", b"warc", organization="o", collection_id="c",
                                             attachments={"attachments/a.pdf": b"%PDF"})
    bag = record.write(root, "e-20261125T093000Z")
    # write_bag's own rename (temporary folder -> staging/name) is checked by the test above;
    # here: every file and folder of the bag was fsynced under one of its earlier names before
    # the no-replace rename, and the root after it.
    [at] = [i for i, e in enumerate(spy.log) if e[0] == "rename" and e[2] == str(bag)]
    before = {e[1] for e in spy.log[:at] if e[0] == "fsync"}
    staged = Path(spy.log[at][1])
    built = [Path(e[1]) for e in spy.log[:at] if e[0] == "rename" and e[2] == str(staged)]
    for path in [bag, *bag.rglob("*")]:
        rel = path.relative_to(bag)
        assert any(str(earlier / rel) in before for earlier in [staged, *built]), \
            f"{rel} was not fsynced before the rename"
    assert str(root) in {e[1] for e in spy.log[at + 1:] if e[0] == "fsync"}, "root not fsynced after"
