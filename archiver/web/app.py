"""``archiver serve``: the collection as a small read-only web application.

Routes (every page also as JSON: ``?format=json`` or the same path under ``/api``)::

    /                          home: counts, latest captures, health, mirrors
    /browse                    sources; ?site= &author= &since= &until= &status= &page=
    /search?q=…&page=          full-text search (the query language of `archiver search`)
    /source?url=…              a source's timeline
    /bag/NAME                  a bag: the text for reading, metadata, files, fixity, mirrors
    /bag/NAME/text.txt         the canonical text
    /bag/NAME/files/PATH       one file of the bag, as a download
    /bag/NAME/captured         the page as captured, in a sandboxed iframe
    /bag/NAME/captured/page    the archived HTML itself, under a CSP that runs nothing
    /diff/OLD/NEW              two captures compared (?layout=inline|side)

Only GET and HEAD are routed: no request can change the collection. A name
in a path reaches the file system only as a catalogued bag name checked by
``CollectionReader.bag_dir``. Every response carries a Content-Security-Policy
that allows no script at all (the pages work without JavaScript), and the
Host header must name this server (a web page elsewhere cannot read the
collection through DNS rebinding).
"""

from __future__ import annotations

import re
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from archiver.collection.catalog import NotInCatalog
from archiver.errors import ArchiverError, UsageError
from archiver.web import views
from archiver.web.captured import ARCHIVED_PAGE_HEADERS, archived_page, served_content_type
from archiver.web.collection import BagUnavailable, CollectionReader
from archiver.web.render import STATIC, ServerLinks, make_environment

PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


class SecurityHeaders:
    """ASGI middleware: add the security headers a response does not set itself."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    """A download's body, read a MiB at a time; the stream is closed at the end."""
    with stream:
        while chunk := stream.read(1 << 20):
            yield chunk


def create_app(root: Path, audit_window: timedelta = timedelta(days=90),
               allowed_hosts: list[str] | None = None) -> Starlette:
    """The web application for the collection at ``root`` (read-only)."""
    reader = CollectionReader(root, audit_window)
    env = make_environment()
    links = ServerLinks()

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/") or request.query_params.get("format") == "json"

    def json_link(request: Request) -> str:
        query = request.url.query
        return f"{request.url.path}?{query + '&' if query else ''}format=json"

    def page(request: Request, template: str, document: dict[str, Any], section: str = "",
             **extra: Any) -> Response:
        if wants_json(request):
            return JSONResponse(document)
        html = env.get_template(template).render(d=document, links=links, section=section,
                                                 json_link=json_link(request), root_label=reader.root.name,
                                                 **extra)
        return HTMLResponse(html)

    def problem(request: Request, exc: ArchiverError) -> Response:
        status = 404 if isinstance(exc, (NotInCatalog, BagUnavailable)) else 400 if isinstance(
            exc, UsageError) else 500
        if wants_json(request):
            return JSONResponse({"error": str(exc), "exit_code": exc.exit_code}, status_code=status)
        title = {404: "Not in this collection", 400: "Cannot do that"}.get(status, "Cannot read the collection")
        html = env.get_template("error.html").render(title=title, message=str(exc), links=links,
                                                     root_label=reader.root.name)
        return HTMLResponse(html, status_code=status)

    def handled(view: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return view(request)
            except ArchiverError as exc:
                return problem(request, exc)
        return endpoint

    def home(request: Request) -> Response:
        return page(request, "home.html", views.home(reader), "home")

    def browse(request: Request) -> Response:
        q = request.query_params
        document = views.browse(reader, q.get("site", ""), q.get("author", ""), q.get("since", ""),
                                q.get("until", ""), q.get("status", ""), views.page_number(q.get("page")))
        return page(request, "browse.html", document, "browse")

    def search(request: Request) -> Response:
        q = request.query_params
        document = views.search(reader, q.get("q", ""), views.page_number(q.get("page")))
        if wants_json(request):
            return JSONResponse(document)
        results = [{**hit, "parts": views.snippet_parts(hit["snippet"])} for hit in document["results"]]
        return page(request, "search.html", {**document, "results": results}, "search", query=document["query"])

    def source(request: Request) -> Response:
        url = request.query_params.get("url", "")
        if not url:
            raise UsageError("which source? (give ?url=…)")
        return page(request, "timeline.html", views.timeline(reader, url), "browse")

    def bag(request: Request) -> Response:
        document = views.bag(reader, request.path_params["name"])
        return page(request, "bag.html", document, "browse", page_lang=None)

    def text(request: Request) -> Response:
        name = request.path_params["name"]
        body = reader.read_file(name, "data/text.txt")
        return Response(body, media_type="text/plain; charset=utf-8",
                        headers={"Content-Disposition": f'inline; filename="{name}.txt"'})

    def bag_file(request: Request) -> Response:
        name, path = request.path_params["name"], request.path_params["path"]
        try:
            stream = reader.bag_dir(name).open(path)  # no symlink, nothing outside the bag
        except FileNotFoundError as exc:
            raise BagUnavailable(f"bag {name} has no file {path!r}") from exc
        except ArchiverError as exc:
            raise BagUnavailable(str(exc)) from exc

        filename = re.sub(r"[^A-Za-z0-9._-]", "_", path.rsplit("/", 1)[-1])  # never a header injection
        return StreamingResponse(_chunks(stream), media_type="application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                 "Content-Security-Policy": "sandbox; default-src 'none'"})

    def bag_tar(request: Request) -> Response:
        # The same pax tar `archiver export --format tar` writes, spooled in a temporary
        # file outside the collection (never inside it: serving is read-only).
        from archiver.exchange.serialise import write_bag_tar

        name = request.path_params["name"]
        folder = reader.bag_dir(name).path  # checked: a real folder directly under the root
        spool = tempfile.TemporaryFile()
        try:
            write_bag_tar(folder, spool)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        filename = re.sub(r"[^A-Za-z0-9._-]", "_", name) + ".tar"
        return StreamingResponse(_chunks(spool), media_type="application/x-tar",
                                 headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    def captured(request: Request) -> Response:
        name = request.path_params["name"]
        record = reader.find(name)
        uri, _, _ = archived_page(reader, name)
        document = {"name": name, "uri": uri, "title": record.title, "retrieved": record.retrieved,
                    "page": links.captured_page(name)}
        return page(request, "captured.html", document, "browse")

    def captured_page(request: Request) -> Response:
        _, body, content_type = archived_page(reader, request.path_params["name"])
        return Response(body, media_type=served_content_type(content_type), headers=ARCHIVED_PAGE_HEADERS)

    def diff(request: Request) -> Response:
        document = views.diff(reader, request.path_params["old"], request.path_params["new"])
        layout = "inline" if request.query_params.get("layout") == "inline" else "side"
        return page(request, "diff.html", document, "browse", layout=layout)

    pages = [("/", home), ("/browse", browse), ("/search", search), ("/source", source),
             ("/bag/{name}", bag), ("/diff/{old}/{new}", diff), ("/bag/{name}/captured", captured)]
    routes: list[Route | Mount] = [Route(path, handled(view), methods=["GET", "HEAD"]) for path, view in pages]
    routes += [Route("/api" + (path if path != "/" else "/home"), handled(view), methods=["GET", "HEAD"])
               for path, view in pages]
    routes += [Route("/bag/{name}/text.txt", handled(text), methods=["GET", "HEAD"]),
               Route("/bag/{name}/files/{path:path}", handled(bag_file), methods=["GET", "HEAD"]),
               Route("/bag/{name}/bag.tar", handled(bag_tar), methods=["GET", "HEAD"]),
               Route("/bag/{name}/captured/page", handled(captured_page), methods=["GET", "HEAD"]),
               Mount("/static", StaticFiles(directory=str(STATIC)), name="static")]

    async def not_found(request: Request, exc: Exception) -> Response:
        return problem(request, NotInCatalog(f"nothing at {request.url.path}"))

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("read-only: only GET and HEAD are allowed\n", status_code=405,
                                 headers={"Allow": "GET, HEAD"})

    middleware = [Middleware(SecurityHeaders),
                  Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or ["127.0.0.1", "localhost",
                                                                                     "[::1]"])]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={404: not_found, 405: not_allowed})
    app.state.reader = reader
    return app
