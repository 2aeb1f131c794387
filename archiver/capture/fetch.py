"""Polite HTTP fetching: the only module that talks HTTP.

``Fetcher.fetch(url)`` follows redirects itself (at most ``max_redirects``),
so that every hop is recorded as an ``Exchange`` with the request as sent and
the response body *as received* (before content decoding), for the WARC.

Politeness: robots.txt through protego (cached per host), a per-host minimum
delay between requests (different hosts proceed concurrently), urllib3
``Retry`` with exponential backoff on 429/500/502/503/504 and connection
errors, honouring ``Retry-After`` (capped). Safety: connect and read
timeouts, a cap on the body both as received and after content decoding
(a gzip bomb is stopped as it inflates), and anything unexpected raised as
an ``archiver.errors.SourceError`` with a one-line reason.

robots.txt that itself errors is treated as Google documents for its
crawler: 4xx (but 429) means no restrictions; 429, 5xx or an unreachable
server means "disallow everything" for now. The decision is recorded in
``Capture.robots``. A ``Crawl-delay`` for our user agent raises that host's
delay (never lowers it), up to ``CRAWL_DELAY_MAX`` seconds. Listings (XML,
gzip, text) are fetched like pages, under the same caps; ``gunzip_capped``
inflates a gzipped sitemap with the cap applied to the inflated bytes.
"""

from __future__ import annotations

import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable
from urllib.parse import urljoin, urlsplit

import requests
from protego import Protego
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from archiver import __version__
from archiver.errors import FetchError, HTTPStatusError, RobotsDisallowed, TooLarge, UsageError, redact_credentials
from archiver.clock import utc_now

DEFAULT_USER_AGENT = f"archiver/{__version__} (preservation crawler; set --user-agent to add a contact)"
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
RETRY_STATUSES = (429, 500, 502, 503, 504)
_CHUNK = 64 * 1024
CRAWL_DELAY_MAX = 120.0


@dataclass
class FetchSettings:
    user_agent: str = DEFAULT_USER_AGENT
    delay: float = 1.0                 # minimum seconds between requests to one host
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_bytes: int = DEFAULT_MAX_BYTES
    max_redirects: int = 10
    retries: int = 3
    backoff_factor: float = 0.5
    retry_after_max: int = 120
    obey_robots: bool = True


@dataclass
class Exchange:
    """One HTTP request and its response, as sent and as received."""

    url: str
    method: str
    request_headers: list[tuple[str, str]]
    status: int
    reason: str
    http_version: str
    response_headers: list[tuple[str, str]]
    body: bytes                         # as received (still content-encoded)
    time: datetime


@dataclass
class Capture:
    """The result of fetching one URL: every hop, and the final decoded body."""

    url: str
    final_url: str
    retrieved: datetime
    exchanges: list[Exchange]
    status: int
    content_type: str
    header_charset: str | None
    body: bytes                         # final response, content-decoding undone
    robots: str = "not checked"
    not_modified: bool = False
    redirects: list[dict] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        final = self.exchanges[-1]
        for key, value in final.response_headers:
            if key.lower() == name.lower():
                return value
        return None


class HostThrottle:
    """At most one request to a host per ``delay`` seconds; hosts are independent."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._next: dict[str, float] = {}
        self._host_delay: dict[str, float] = {}   # a robots.txt Crawl-delay above ``delay``

    def slow_down(self, host: str, seconds: float) -> None:
        """Keep at least ``seconds`` between requests to ``host`` (Crawl-delay)."""
        if seconds > self.delay:
            self._host_delay[host] = min(seconds, CRAWL_DELAY_MAX)
            # robots.txt itself was a request: the next one waits the Crawl-delay too.
            self._next[host] = max(self._next.get(host, 0.0), time.monotonic() + self._host_delay[host])

    def wait(self, host: str) -> threading.Lock:
        with self._lock:
            lock = self._host_locks.setdefault(host, threading.Lock())
        lock.acquire()
        now = time.monotonic()
        ready = self._next.get(host, now)
        if ready > now:
            time.sleep(ready - now)
        return lock

    def done(self, host: str, lock: threading.Lock) -> None:
        self._next[host] = time.monotonic() + self._host_delay.get(host, self.delay)
        lock.release()


def _check_header_value(option: str, value: str) -> None:
    """An HTTP header value is one line of Latin-1 text (what the HTTP client can
    send); anything else is the caller's mistake, said before any request."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise UsageError(f"{option} must be Latin-1 text (it is sent as an HTTP header); "
                         f"got {value!r}") from None
    if not value.isprintable():
        raise UsageError(f"{option} must be one line of printable text; got {value!r}")


class Fetcher:
    """Fetch URLs politely; thread-safe (one session per thread)."""

    def __init__(self, settings: FetchSettings | None = None) -> None:
        self.settings = settings or FetchSettings()
        _check_header_value("--user-agent", self.settings.user_agent)
        self.throttle = HostThrottle(self.settings.delay)
        self._local = threading.local()
        self._robots: dict[str, tuple[Protego | None, str]] = {}
        self._robots_lock = threading.Lock()

    # -- sessions ----------------------------------------------------------
    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            s = self.settings
            retry = Retry(
                total=s.retries, connect=s.retries, read=s.retries, status=s.retries,
                status_forcelist=RETRY_STATUSES, backoff_factor=s.backoff_factor,
                respect_retry_after_header=True, retry_after_max=s.retry_after_max,
                redirect=False, raise_on_status=False, allowed_methods=frozenset({"GET", "HEAD"}),
            )
            session = requests.Session()
            # Never send credentials from ~/.netrc (requests reads it when a
            # request has no auth): they would be recorded in the WARC.
            session.auth = _no_credentials
            adapter = HTTPAdapter(max_retries=retry)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update({
                "User-Agent": s.user_agent,
                "Accept": "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.5,*/*;q=0.1",
                "Accept-Encoding": "gzip, deflate",
            })
            self._local.session = session
        return session

    # -- robots.txt --------------------------------------------------------
    def robots_verdict(self, url: str) -> str:
        """Return how robots.txt rules on ``url``; raise RobotsDisallowed if it forbids it."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._robots_lock:
            cached = self._robots.get(origin)
        if cached is None:
            cached = self._load_robots(origin)
            with self._robots_lock:
                self._robots[origin] = cached
        parser, how = cached
        if parser is None:
            if how.startswith("allow"):
                return how
            if how.startswith("error: "):
                raise FetchError(how[len("error: "):])
            raise RobotsDisallowed(f"robots.txt: {how}")
        if not parser.can_fetch(url, self.settings.user_agent):
            raise RobotsDisallowed(f"robots.txt at {origin} disallows this URL for our user agent")
        return "allowed by robots.txt"

    def _load_robots(self, origin: str) -> tuple[Protego | None, str]:
        robots_url = origin + "/robots.txt"
        try:
            exchange = self._request(robots_url, {})
        except FetchError as exc:
            # The host itself is unreachable: that, not robots.txt, is the reason to give.
            return None, f"error: {exc} (while fetching {robots_url})"
        if exchange.status == 429 or exchange.status >= 500:
            return None, f"{robots_url} answered {exchange.status}; treated as disallow-all, as major crawlers do"
        if exchange.status >= 400:
            return None, f"allow: {robots_url} answered {exchange.status}, so no restrictions apply"
        if 300 <= exchange.status < 400:
            # Redirected robots.txt: follow one hop, as crawlers do.
            location = _header(exchange.response_headers, "Location")
            if location:
                try:
                    exchange = self._request(urljoin(robots_url, location), {})
                except FetchError:
                    return None, f"allow: {robots_url} redirected to an unreachable place"
                if exchange.status != 200:
                    return None, f"allow: {robots_url} redirected to a {exchange.status}"
        body = _decode_content(exchange, self.settings.max_bytes)
        text = body[:500 * 1024].decode("utf-8", errors="replace")
        parser = Protego.parse(text)
        crawl_delay = parser.crawl_delay(self.settings.user_agent)
        if crawl_delay:
            self.throttle.slow_down(urlsplit(origin).netloc, float(crawl_delay))
        return parser, "parsed"

    def robots_sitemaps(self, url: str) -> list[str]:
        """The ``Sitemap:`` lines of the robots.txt of ``url``'s host (when robots.txt is obeyed)."""
        if not self.settings.obey_robots:
            return []
        try:
            self.robots_verdict(url)
        except FetchError:
            return []
        except RobotsDisallowed:
            pass
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        with self._robots_lock:
            parser, _ = self._robots.get(origin, (None, ""))
        return list(parser.sitemaps) if parser is not None else []

    # -- fetching ----------------------------------------------------------
    def fetch(self, url: str, conditional: dict[str, str] | None = None,
              max_bytes: int | None = None) -> Capture:
        """Fetch ``url`` following redirects; return every hop and the decoded body.

        ``conditional`` holds If-None-Match / If-Modified-Since for a re-check;
        a 304 gives a Capture with ``not_modified=True`` and no body.
        ``max_bytes`` overrides the settings' cap for this URL (attachments).
        """
        cap = max_bytes or self.settings.max_bytes
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise FetchError(f"not an http(s) URL: {url}")
        retrieved = utc_now()
        robots = "not checked (--ignore-robots)"
        exchanges: list[Exchange] = []
        current = url
        headers = dict(conditional or {})
        for _hop in range(self.settings.max_redirects + 1):
            if self.settings.obey_robots:
                robots = self.robots_verdict(current)
            exchange = self._request(current, headers, cap)
            exchanges.append(exchange)
            if exchange.status in (301, 302, 303, 307, 308):
                location = _header(exchange.response_headers, "Location")
                if not location:
                    raise FetchError(f"HTTP {exchange.status} redirect without a Location header")
                try:
                    current = urljoin(current, location.strip())
                    target = urlsplit(current)
                except ValueError as exc:
                    raise FetchError(f"HTTP {exchange.status} redirect to a malformed URL ({exc})") from None
                if target.scheme not in ("http", "https"):
                    raise FetchError(f"redirect to a non-http URL: {redact_credentials(current)}")
                if "@" in target.netloc:  # never send, record or archive credentials
                    raise FetchError(f"redirect to a URL with credentials, not followed: "
                                     f"{redact_credentials(current)}")
                continue
            break
        else:
            urls = [e.url for e in exchanges]
            if len(set(urls)) < len(urls):  # say it is a loop: retrying later will not help
                loop = next(urls[i:urls.index(u, i + 1) + 1] for i, u in enumerate(urls) if u in urls[i + 1:])
                raise FetchError(f"more than {self.settings.max_redirects} redirects: a loop "
                                 f"({' -> '.join(loop)})")
            raise FetchError(
                f"more than {self.settings.max_redirects} redirects "
                f"({' -> '.join(urls[:3])} -> …)")
        final = exchanges[-1]
        redirects = [{"url": e.url, "status": e.status} for e in exchanges]
        if final.status == 304 and conditional:
            return Capture(url, current, retrieved, exchanges, 304, "", None, b"", robots,
                           not_modified=True, redirects=redirects)
        if final.status != 200:
            reason = f" {final.reason}" if final.reason else ""
            if final.status in RETRY_STATUSES:
                raise HTTPStatusError(f"HTTP {final.status}{reason} (after {self.settings.retries} retries)",
                                      final.status)
            raise HTTPStatusError(f"HTTP {final.status}{reason}", final.status)
        body = _decode_content(final, cap)
        content_type_header = _header(final.response_headers, "Content-Type") or ""
        content_type, charset = parse_content_type(content_type_header)
        return Capture(url, current, retrieved, exchanges, final.status, content_type, charset, body,
                       robots, redirects=redirects)

    def _request(self, url: str, extra_headers: dict[str, str], cap: int | None = None) -> Exchange:
        host = urlsplit(url).netloc
        lock = self.throttle.wait(host)
        try:
            return self._request_unthrottled(url, extra_headers, cap or self.settings.max_bytes)
        finally:
            self.throttle.done(host, lock)

    def _request_unthrottled(self, url: str, extra_headers: dict[str, str], cap: int) -> Exchange:
        s = self.settings
        when = utc_now()
        try:
            resp = self._session().get(url, headers=extra_headers, stream=True, allow_redirects=False,
                                       timeout=(s.connect_timeout, s.read_timeout))
        except requests.exceptions.ConnectTimeout as exc:
            raise FetchError(f"connection timed out after {s.connect_timeout:g} s") from exc
        except requests.exceptions.ReadTimeout as exc:
            raise FetchError(f"no answer within the read timeout ({s.read_timeout:g} s)") from exc
        except requests.exceptions.ConnectionError as exc:
            if _caused_by(exc, ReadTimeoutError):
                raise FetchError(f"no answer within the read timeout ({s.read_timeout:g} s)") from exc
            raise FetchError(f"cannot connect: {_root_cause(exc)}") from exc
        except requests.exceptions.RequestException as exc:
            raise FetchError(f"request failed: {_root_cause(exc)}") from exc
        try:
            body = self._read_raw(resp, cap)
        finally:
            resp.close()
        original = resp.raw._original_response  # http.client response: headers in order, as sent
        response_headers = list(original.msg.items()) if original is not None else list(resp.headers.items())
        version = {9: "HTTP/0.9", 10: "HTTP/1.0", 11: "HTTP/1.1"}.get(getattr(original, "version", 11), "HTTP/1.1")
        request_headers = [(k, _header_text(v)) for k, v in resp.request.headers.items()]
        return Exchange(url, "GET", request_headers, resp.status_code, resp.reason or "", version,
                        response_headers, body, when)

    def _read_raw(self, resp: requests.Response, cap: int) -> bytes:
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise TooLarge(f"body of {int(declared):,} bytes (Content-Length) is over the {cap:,}-byte cap")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in resp.raw.stream(_CHUNK, decode_content=False):
                size += len(chunk)
                if size > cap:
                    raise TooLarge(f"body is over the {cap:,}-byte cap (stopped reading)")
                chunks.append(chunk)
        except (ReadTimeoutError, requests.exceptions.ReadTimeout) as exc:
            raise FetchError(f"body stalled past the read timeout ({self.settings.read_timeout:g} s)") from exc
        except ProtocolError as exc:
            raise FetchError(f"connection broke while reading the body after {size:,} bytes: "
                             f"{_root_cause(exc)}") from exc
        return b"".join(chunks)


def _no_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An auth that adds nothing, so requests does not fall back to ~/.netrc."""
    return request


def parse_content_type(value: str) -> tuple[str, str | None]:
    """``text/html; charset=UTF-8`` → (``text/html``, ``UTF-8``)."""
    parts = [p.strip() for p in value.split(";")]
    mime = parts[0].lower() if parts and parts[0] else ""
    charset = None
    for p in parts[1:]:
        key, _, val = p.partition("=")
        if key.strip().lower() == "charset" and val.strip():
            charset = val.strip().strip("'\"")
    return mime, charset


def _header_text(value: str | bytes) -> str:
    """A header value as text (http.client gives str; bytes only from odd servers)."""
    return value if isinstance(value, str) else value.decode("latin-1")


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


def _decode_content(exchange: Exchange, cap: int) -> bytes:
    """Undo Content-Encoding with the size cap applied to the decoded bytes."""
    encoding = (_header(exchange.response_headers, "Content-Encoding") or "identity").strip().lower()
    data = exchange.body
    for coding in reversed([c.strip() for c in encoding.split(",") if c.strip()]):
        if coding in ("identity", ""):
            continue
        if coding in ("gzip", "x-gzip"):
            data = _inflate(data, zlib.MAX_WBITS | 16, cap)
        elif coding == "deflate":
            try:
                data = _inflate(data, zlib.MAX_WBITS, cap)
            except FetchError:
                data = _inflate(data, -zlib.MAX_WBITS, cap)  # raw deflate, as some servers send
        else:
            raise FetchError(f"unsupported Content-Encoding {coding!r}")
    return data


def gunzip_capped(data: bytes, cap: int) -> bytes:
    """Inflate a gzip file (a ``.xml.gz`` sitemap), refusing past ``cap`` inflated bytes."""
    return _inflate(data, zlib.MAX_WBITS | 16, cap)


def _inflate(data: bytes, wbits: int, cap: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out: list[bytes] = []
    size = 0
    pending = data
    try:
        while pending:
            chunk = inflater.decompress(pending, _CHUNK)
            size += len(chunk)
            if size > cap:
                raise TooLarge(f"body inflates past the {cap:,}-byte cap (Content-Encoding bomb?)")
            out.append(chunk)
            pending = inflater.unconsumed_tail
            if not chunk and not pending:
                break
        tail = inflater.flush()
    except zlib.error as exc:
        raise FetchError(f"body is not valid compressed data: {exc}") from exc
    size += len(tail)
    if size > cap:
        raise TooLarge(f"body inflates past the {cap:,}-byte cap (Content-Encoding bomb?)")
    out.append(tail)
    return b"".join(out)


def _caused_by(exc: BaseException, kind: type) -> bool:
    seen: BaseException | None = exc
    for _ in range(20):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        if isinstance(seen, MaxRetryError) and seen.reason is not None:
            seen = seen.reason
            continue
        nxt = seen.__cause__ or seen.__context__ or (seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None)
        seen = nxt
    return False


def _root_cause(exc: BaseException) -> str:
    """The innermost useful message of a requests/urllib3 exception chain."""
    seen = exc
    while True:
        inner = seen.__cause__ or seen.__context__
        if isinstance(seen, MaxRetryError) and seen.reason is not None:
            inner = seen.reason
        if inner is None or inner is seen:
            break
        seen = inner
    text = str(seen) or seen.__class__.__name__
    if "Connection refused" in text or "ConnectionRefused" in text:
        return "connection refused"
    return text.splitlines()[0][:200]


ProgressFn = Callable[..., None]
