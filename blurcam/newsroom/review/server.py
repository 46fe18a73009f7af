"""``blurcam review``: the review desk's web server (Starlette on uvicorn, 127.0.0.1).

Every request must carry the run's token (``?token=``, the ``X-Blurcam-Token``
header, or the SameSite=Strict cookie the page gets when it is opened with the
token) and a local Host header (no DNS rebinding); anything else gets 403. Requests
that change state must come from the page's own origin. The token is never printed
or logged: the address is written to a launcher file in the private workdir (0700),
which the browser opens; uvicorn's access log (request lines with query strings) is
off. Every response is ``Cache-Control: no-store`` (originals are shown too).
"""
from __future__ import annotations

import json
import logging
import secrets
import shutil
import socket
import tempfile
import webbrowser
from http.cookies import SimpleCookie
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs

from ...errors import BlurcamError, OutputExistsError, UsageError
from ...io.media import MEDIA_EXTENSIONS, is_media_path
from .jobs import PRESETS, Desk, UploadTooLarge

log = logging.getLogger(__name__)

TOKEN_HEADER = b"x-blurcam-token"
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                                 b"connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
]


class Guard:
    """ASGI middleware: token, Host and Origin checks on every request; security headers
    on every response."""

    def __init__(self, app, token: str, port: int) -> None:
        self.app, self.token, self.port = app, token.encode(), port
        self.hosts = {f"{name}:{port}".encode() for name in ("127.0.0.1", "localhost", "[::1]")}
        self.cookie = f"blurcam_token_{port}"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"")
        if host not in self.hosts:
            return await _deny(send, "Host not allowed")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = [q.encode() for q in query.get("token", [])] + [headers.get(TOKEN_HEADER, b"")]
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get(b"cookie", b"").decode("latin-1"))
        except Exception:  # a malformed cookie header is no token
            pass
        if self.cookie in cookies:
            given.append(cookies[self.cookie].value.encode())
        if not any(secrets.compare_digest(g, self.token) for g in given if g):
            return await _deny(send, "missing or wrong token")
        origin = headers.get(b"origin")
        if scope["method"] not in ("GET", "HEAD") and origin is not None and origin != b"http://" + host:
            return await _deny(send, "cross-origin request refused")
        set_cookie = scope["path"] == "/"

        async def send_secured(message) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                if set_cookie:
                    extra.append((b"set-cookie", f"{self.cookie}={self.token.decode()}; Path=/; HttpOnly; "
                                                 "SameSite=Strict".encode()))
                message = {**message, "headers": [h for h in message.get("headers", [])
                                                  if h[0].lower() != b"cache-control"] + extra}
            await send(message)

        await self.app(scope, receive, send_secured)


async def _deny(send, why: str) -> None:
    body = f"403 Forbidden: {why}\n".encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})


def make_app(desk: Desk, token: str, port: int):
    """The Starlette app for ``desk``, wrapped in :class:`Guard`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    static = Path(str(resources.files("blurcam.newsroom.review") / "static"))

    def fail(exc: Exception) -> JSONResponse:
        status = (404 if isinstance(exc, KeyError) else 413 if isinstance(exc, UploadTooLarge)
                  else 409 if isinstance(exc, OutputExistsError) else 400 if isinstance(exc, UsageError)
                  else 400 if isinstance(exc, BlurcamError) else 500)
        message = "no such file on the desk" if isinstance(exc, KeyError) else str(exc)
        return JSONResponse({"error": message, "exists": isinstance(exc, OutputExistsError)}, status_code=status)

    async def index(request: Request) -> Response:
        return FileResponse(static / "index.html", media_type="text/html; charset=utf-8")

    async def state(request: Request) -> Response:
        runs = desk.folder_runs()
        in_runs = desk.run_states(runs)
        with desk.lock:
            items = [item.public() | {"export_to": desk.default_export(item), "run_state": in_runs.get(item.id)}
                     for item in desk.items.values()]
        return JSONResponse({"items": items, "presets": PRESETS, "roots": [str(r) for r in desk.roots],
                             "max_upload_mb": desk.max_upload_bytes // 2**20, "extensions": MEDIA_EXTENSIONS})

    async def runs(request: Request) -> Response:
        return JSONResponse({"runs": desk.folder_runs()})

    async def item(request: Request) -> Response:
        try:
            found = desk.get(request.path_params["id"])
        except KeyError as exc:
            return fail(exc)
        with desk.lock:
            return JSONResponse(found.public(full=True) | {"export_to": desk.default_export(found)})

    async def upload(request: Request) -> Response:
        name = request.query_params.get("name", "")
        declared = request.headers.get("content-length")
        try:
            added = await desk.add_upload(name, request.stream(), int(declared) if declared else None)
        except (BlurcamError, ValueError) as exc:
            return fail(exc if isinstance(exc, BlurcamError) else UsageError("bad Content-Length"))
        return JSONResponse(added.public())

    async def body(request: Request) -> dict:
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UsageError("the request body is not JSON") from None
        if not isinstance(data, dict):
            raise UsageError("the request body must be a JSON object")
        return data

    def posted(act):
        """A POST/PUT on one item with a JSON object body: ``act(id, body)``'s result as
        JSON; a bad body, an unknown item or a refusal as ``fail``."""
        async def handler(request: Request) -> Response:
            try:
                return JSONResponse(act(request.path_params["id"], await body(request)))
            except (BlurcamError, KeyError) as exc:
                return fail(exc)
        return handler

    start = posted(lambda id_, data: desk.start(id_, str(data.get("preset", "balanced"))).public())
    regions = posted(lambda id_, data: desk.set_regions(id_, data).public(full=True))
    export = posted(lambda id_, data: {"written": [str(p) for p in desk.export(
        id_, str(data.get("path", "")), bool(data.get("overwrite")))]})
    keep_regions = posted(lambda id_, data: {"written": [str(desk.keep_regions(
        id_, str(data.get("path", "")), bool(data.get("overwrite"))))]})

    def done_file(request: Request, kind: str) -> Response:
        try:
            found = desk.get(request.path_params["id"])
        except KeyError as exc:
            return fail(exc)
        if kind == "original":
            return FileResponse(found.source)  # no-store, as every response
        if found.renders == 0:
            return JSONResponse({"error": "not rendered yet"}, status_code=404)
        if kind == "output":
            path = desk.output_of(found)
            if request.query_params.get("download"):
                return FileResponse(path, filename=path.name)
            return FileResponse(path)
        return FileResponse(desk.sidecar(found, "sheet.png"), media_type="image/png")

    async def output(request: Request) -> Response:
        return done_file(request, "output")

    async def original(request: Request) -> Response:
        return done_file(request, "original")

    async def sheet(request: Request) -> Response:
        return done_file(request, "sheet")

    routes = [
        Route("/", index),
        Route("/api/state", state),
        Route("/api/runs", runs),
        Route("/api/upload", upload, methods=["POST"]),
        Route("/api/items/{id}", item),
        Route("/api/items/{id}/start", start, methods=["POST"]),
        Route("/api/items/{id}/regions", regions, methods=["PUT"]),
        Route("/api/items/{id}/export", export, methods=["POST"]),
        Route("/api/items/{id}/keep-regions", keep_regions, methods=["POST"]),
        Route("/api/items/{id}/output", output),
        Route("/api/items/{id}/original", original),
        Route("/api/items/{id}/sheet.png", sheet),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]
    return Guard(Starlette(routes=routes), token, port)


def collect(paths: list[Path]) -> list[tuple[Path, str]]:
    """The media files among ``paths`` (folders walked, sorted), each with the folder
    it was found under relative to the folder given ("" for files given by name)."""
    found = []
    for path in paths:
        if path.is_dir():
            for each in sorted(path.rglob("*")):
                if each.is_file() and is_media_path(each) and not each.name.startswith("."):
                    found.append((each, str(each.parent.relative_to(path)) if each.parent != path else path.name))
        elif path.is_file():
            found.append((path, ""))
        else:
            raise UsageError(f"{path}: no such file or folder")
    return found


def serve(paths: list[Path], *, port: int = 0, host: str = "127.0.0.1", open_browser: bool = True,
          export_dir: Path | None = None, max_upload_mb: int = 4096, on_ready=None) -> None:
    """Run the desk until interrupted: items for ``paths``, exports confined to their
    folders (and ``export_dir``; the current folder when none). ``on_ready(launcher)``
    gets the launcher file's path once the server listens (default: say it on stderr)."""
    import uvicorn

    files = collect(paths)
    roots = [p.resolve() for p in paths if p.is_dir()] + [p.resolve().parent for p in paths if p.is_file()]
    if export_dir is not None:
        if not export_dir.is_dir():
            raise UsageError(f"{export_dir}: no such folder")
        roots.append(export_dir.resolve())
    roots = list(dict.fromkeys(roots)) or [Path.cwd().resolve()]
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(24)
    # The desk's private folder (0700, removed on exit): the uploads the user gives it (their
    # own originals, which must sit somewhere to be read) and redacted renders. blurcam
    # itself writes no unredacted frame or crop here or anywhere.
    workdir = Path(tempfile.mkdtemp(prefix="blurcam-review-"))
    desk = Desk(workdir, roots, max_upload_bytes=max_upload_mb * 2**20)
    try:
        for path, folder in files:
            desk.add_path(path, folder)
        shown = "localhost" if host in ("127.0.0.1", "::1") else host
        url = f"http://{shown}:{port}/?token={token}"
        launcher = workdir / "open.html"
        launcher.write_text(f'<!doctype html><meta http-equiv="refresh" content="0; url={url}">'
                            f'<title>blurcam review</title><a href="{url}">Open the blurcam review desk</a>\n')
        launcher.chmod(0o600)
        config = uvicorn.Config(make_app(desk, token, port), log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        if on_ready is None:
            def on_ready(path: Path) -> None:
                import sys

                sys.stderr.write(f"blurcam review: listening on {host}:{port}; open {path.as_uri()} in your browser "
                                 f"(a private file holding the page's address and its access token). Ctrl-C to stop; "
                                 f"uploads and unexported renders in {workdir} are deleted then.\n")
                sys.stderr.flush()
        sock.listen(64)
        on_ready(launcher)
        if open_browser:
            webbrowser.open(launcher.as_uri())
        server.run(sockets=[sock])
    finally:
        desk.close()
        sock.close()
        shutil.rmtree(workdir, ignore_errors=True)
