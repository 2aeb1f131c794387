"""OAI-PMH: a thin harvester over archiver's fetcher (``ListRecords`` with
``oai_dc``, or ``ListIdentifiers``), following resumption tokens, with
``from`` for incremental harvests.

amusewiki serves it at ``/oai-pmh``. A record's page is its first http(s)
``dc:identifier``; without one (``ListIdentifiers``), an identifier of the
form ``oai:HOST:/PATH`` gives ``ORIGIN/PATH``. Deleted records are not
listed. Pages are parsed with entities, DTDs and the network off; a repeated
resumption token is a loop and ends the harvest.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from lxml import etree

from archiver.capture.discover.listing import (DiscoverOptions, Findings, NotThisKind, fetch_listing,
                                               lastmod_from_text, looks_like_html, origin_of)
from archiver.capture.fetch import Fetcher
from archiver.errors import SourceError

OAI = "{http://www.openarchives.org/OAI/2.0/}"
DC = "{http://purl.org/dc/elements/1.1/}"
MAX_PAGES = 10_000
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def endpoint_of(site: str) -> str:
    """The site URL itself if it names an OAI-PMH endpoint, else ``ORIGIN/oai-pmh``."""
    return site if "oai" in urlsplit(site).path.lower() else origin_of(site) + "/oai-pmh"


def find(site: str, fetcher: Fetcher, found: Findings, options: DiscoverOptions,
         verb: str = "ListRecords") -> None:
    endpoint = endpoint_of(site)
    params = {"verb": verb, "metadataPrefix": "oai_dc"}
    if options.since:
        params["from"] = options.since.strftime("%Y-%m-%d")
    tokens: set[str] = set()
    for page in range(MAX_PAGES):
        url = f"{endpoint}?{urlencode(params)}"
        try:
            body = fetch_listing(fetcher, url)
        except (NotThisKind, SourceError) as exc:
            if page == 0:
                raise
            found.problem(f"OAI-PMH harvest cut short at page {page + 1}: {exc}")
            return
        token = _read_page(url, body, found, origin_of(site), first=page == 0)
        if not token:
            return
        if token in tokens:
            found.problem(f"OAI-PMH resumption token {token!r} came back again (a loop); harvest stopped")
            return
        tokens.add(token)
        params = {"verb": verb, "resumptionToken": token}
    found.problem(f"OAI-PMH harvest stopped after {MAX_PAGES} pages")


def _read_page(url: str, body: bytes, found: Findings, origin: str, first: bool) -> str | None:
    """Add a page's records to ``found``; return its resumption token (None at the end)."""
    if looks_like_html(body):
        raise NotThisKind(f"{url} is an HTML page, not an OAI-PMH answer")
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        if first and not body.lstrip().startswith(b"<"):
            raise NotThisKind(f"{url} is not XML ({exc.msg})") from None
        found.problem(f"OAI-PMH answer {url} is truncated or malformed (line {exc.lineno}: {exc.msg})")
        return None
    if root.tag != OAI + "OAI-PMH":
        if first:
            raise NotThisKind(f"{url} is XML but not OAI-PMH (root <{etree.QName(root).localname}>)")
        found.problem(f"OAI-PMH answer {url} is not OAI-PMH")
        return None
    error = root.find(OAI + "error")
    if error is not None:
        if error.get("code") == "noRecordsMatch":
            return None
        found.problem(f"OAI-PMH error {error.get('code')}: {(error.text or '').strip()[:200]}")
        return None
    for header in root.iter(OAI + "header"):
        if header.get("status") == "deleted":
            continue
        record = header.getparent()
        page = None
        if record is not None and record.tag == OAI + "record":
            page = next((i.text.strip() for i in record.iter(DC + "identifier")
                         if i.text and i.text.strip().startswith(("http://", "https://"))), None)
        if page is None:
            identifier = (header.findtext(OAI + "identifier") or "").strip()
            _, _, path = identifier.partition(":/")
            page = f"{origin}/{path}" if identifier.startswith("oai:") and path else None
        if page:
            found.add(page, lastmod_from_text(header.findtext(OAI + "datestamp")), url)
    token = root.find(f".//{OAI}resumptionToken")
    return (token.text or "").strip() or None if token is not None else None
