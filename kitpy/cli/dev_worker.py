"""The worker of ``kitpy dev``: the site, served on the supervisor's socket.

``python -m kitpy.cli.dev_worker SITE --listen-fd N ...`` is started by
:mod:`kitpy.cli.dev_supervisor`, never by hand. It is ``kitpy serve`` with these
differences:

- ``dev=True``: a 500 shows its traceback;
- WebSockets are closed with 1012 ("service restart") when it stops, so browsers
  reconnect at once;
- a coloured, concise request log;
- live reload: every HTML page it serves (routes and static files alike, 200 only)
  gets a small script before ``</body>`` that opens a WebSocket to
  :data:`RELOAD_PATH`. The page reloads itself when that socket is told ``reload``
  (a static file changed: the supervisor sent SIGUSR1) or closes (this worker is
  being replaced: the page waits until the new one answers, then reloads);
- a site that does not load (a syntax error in a route, a broken kitpy.toml) is not
  fatal: the worker serves an error app instead, answering every request with a 500
  page that shows the error (file, line, message), and reloads with the rest once the
  file is saved again.
"""

from __future__ import annotations

import argparse
import html
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from kitpy.cli.terminal import LOG_LEVELS, Style, configure_logging, say, status_style
from kitpy.errors import InitError, KitpyError
from kitpy.http.cookies import secure_cookies_dropped
from kitpy.http.response import Response
from kitpy.http.response import html as html_response
from kitpy.http.response import json as json_response
from kitpy.http.websocket import WebSocket, WebSocketPair

if TYPE_CHECKING:
    from kitpy.runtime.app import SiteApp

__all__ = ("RELOAD_CLOSE_CODE", "RELOAD_PATH", "RELOAD_SCRIPT", "inject_reload_script", "main")

#: Close code for WebSockets when a reload stops the worker (RFC 6455 registry:
#: 1012 "Service Restart"), so clients reconnect without backing off.
RELOAD_CLOSE_CODE = 1012
#: Where pages listen for reloads (a WebSocket the worker closes when it stops).
RELOAD_PATH = "/__kitpy/reload"
#: Seconds the worker gets to shut down after the supervisor vanished, then it exits.
ORPHAN_TIMEOUT = 15.0
#: HTML bodies larger than this are sent without the live-reload script.
MAX_INJECTED_BYTES = 8 * 1024 * 1024

RELOAD_SCRIPT = f"""<script data-kitpy-dev-reload>
(() => {{
  // kitpy dev only: reload this page when the site changes.
  const url = new URL("{RELOAD_PATH}", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  let tries = 0;
  function whenBack() {{
    fetch(location.href, {{ method: "HEAD", cache: "no-store" }}).then(
      () => location.reload(),
      () => setTimeout(whenBack, Math.min(2000, 100 * 2 ** tries++)),
    );
  }}
  const ws = new WebSocket(url);
  ws.onmessage = (event) => {{ if (event.data === "reload") location.reload(); }};
  ws.onclose = () => setTimeout(whenBack, 50);
}})();
</script>
"""
_SCRIPT_BYTES = RELOAD_SCRIPT.encode()
logger = logging.getLogger("kitpy.dev")
_BODY_END = re.compile(rb"</body\s*>", re.IGNORECASE)


# -- live reload -------------------------------------------------------------------------


def _with_script(body: bytes, notices: Sequence[str] = ()) -> bytes:
    if b"data-kitpy-dev-reload" in body:
        return body
    ends = list(_BODY_END.finditer(body))
    at = ends[-1].start() if ends else len(body)
    shown = "".join(
        f'<p data-kitpy-dev-notice style="{_NOTICE_STYLE}">{html.escape(notice)}</p>\n'
        for notice in notices
    )
    return body[:at] + shown.encode() + _SCRIPT_BYTES + body[at:]


_NOTICE_STYLE = (
    "font: 14px system-ui, sans-serif; background: #fffbeb; color: #92400e; "
    "border: 1px solid #fcd34d; padding: .5rem 1rem; margin: 1rem 0"
)


async def _collect(stream: AsyncIterable[bytes] | Iterable[bytes]) -> bytes:
    if isinstance(stream, AsyncIterable):
        return b"".join([bytes(chunk) async for chunk in stream])
    return b"".join(bytes(chunk) for chunk in stream)


async def inject_reload_script(
    request: Any, response: Response, notices: Sequence[str] = ()
) -> Response:
    """``response`` with :data:`RELOAD_SCRIPT` before ``</body>`` when it is a page.

    Only a GET answered 200 or 500 with ``text/html``, not encoded, with a body (or
    a stream of a known length, as static files are) up to :data:`MAX_INJECTED_BYTES`.
    A 500 page also shows ``notices`` (the dev server's warnings), one paragraph each.
    A HEAD of such a page announces the ``Content-Length`` of the page GET sends.
    """
    if request.method not in ("GET", "HEAD") or response.status not in (200, 500):
        return response
    headers = response.headers
    if not headers.get("content-type", "").lower().startswith("text/html"):
        return response
    if headers.get("content-encoding", "identity").lower() != "identity":
        return response
    shown = notices if response.status == 500 else ()
    if request.method == "HEAD" and not response.body and response.stream is None:
        # The body was left out, GET's length kept: add what GET's page gets.
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) <= MAX_INJECTED_BYTES:
            headers["content-length"] = str(int(length) + len(_with_script(b"", shown)))
        return response
    if response.stream is not None:
        length = headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_INJECTED_BYTES:
            return response
        response.body = await _collect(response.stream)
        response.stream = None
    body = response.body or b""
    if len(body) > MAX_INJECTED_BYTES:
        return response
    response.body = _with_script(body, shown)
    if "content-length" in headers:
        headers["content-length"] = str(len(response.body))
    return response


class DevApp:
    """The app as dev serves it: live reload, then one coloured log line per request."""

    def __init__(self, app: Any, log: Callable[[str], None], style: Style) -> None:
        self.app = app
        self.log = log
        self.style = style
        self.pages: set[WebSocket] = set()
        #: Warnings shown on every dev error page (each also logged once).
        self.notices: list[str] = []
        self._warned_cookies: set[str] = set()

    async def __call__(self, request: Any) -> Any:
        upgrade = request.headers.get("upgrade", "").lower() == "websocket"
        if upgrade and request.url.path == RELOAD_PATH:
            return self._reload_socket()
        started = time.perf_counter()
        response = await self.app(request)
        self._check_cookies(request, response)
        response = await inject_reload_script(request, response, self.notices)
        took = (time.perf_counter() - started) * 1000
        target = request.url.path
        query = str(request.url.query)
        if query:
            target += "?" + query
        status = response.status
        self.log(
            f"  {self.style(request.method, 'bold')} {target} "
            f"{self.style(str(status), status_style(status))} "
            f"{self.style(f'{took:.0f} ms', 'dim')}"
        )
        return response

    def _check_cookies(self, request: Any, response: Response) -> None:
        """Warn once per cookie that the browser will drop (Secure over plain http)."""
        dropped = secure_cookies_dropped(
            response.headers.get_all("set-cookie"), request.url.scheme, request.url.host
        )
        for name in dropped:
            if name in self._warned_cookies:
                continue
            self._warned_cookies.add(name)
            notice = (
                f"the cookie {name!r} is Secure, but {request.url.host} is served over "
                "plain http: browsers drop it. Open the site as http://localhost or "
                "127.0.0.1, serve it over https, or set the cookie with secure=False."
            )
            logger.warning("%s", notice)
            self.notices.append(notice)

    def _reload_socket(self) -> Response:
        client, server = WebSocketPair()
        server.accept()
        # Kept open; the server closes it with 1012 when we stop. Closed ones go here.
        self.pages = {page for page in self.pages if not page.closed}
        self.pages.add(server)
        return Response(status=101, websocket=client)

    def reload_pages(self) -> None:
        """Tell every open page to reload."""
        for page in list(self.pages):
            if not page.closed:
                page.send_nowait("reload")

    async def _reload_on_signal(self) -> None:
        with anyio.open_signal_receiver(signal.SIGUSR1) as signals:
            async for _signum in signals:
                self.reload_pages()

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with self.app.lifespan(), anyio.create_task_group() as tasks:
            tasks.start_soon(self._reload_on_signal)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()


# -- a site that does not load ---------------------------------------------------------

_ERROR_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kitpy dev: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem;
       padding: 0 1rem; color: #1d2330; }}
h1 {{ color: #b42318; font-size: 1.4rem; }}
pre {{ background: #fff4f2; border: 1px solid #f3c5bd; padding: 1rem; overflow-x: auto;
      white-space: pre-wrap; }}
p {{ color: #6b7280; }}
</style>
</head>
<body>
<h1>The site does not load</h1>
<pre id="kitpy-error">{message}</pre>
<p>Fix the file and save it: the dev server reloads, and so does this page.</p>
<details><summary>Traceback</summary><pre>{traceback}</pre></details>
</body>
</html>
"""


class ErrorApp:
    """What the worker serves while the site is broken: the error, as a 500, for all."""

    def __init__(self, message: str, details: str) -> None:
        self.message = message
        self.details = details

    async def __call__(self, request: Any) -> Any:
        if request.headers.get("accept", "").startswith("application/json"):
            return json_response({"message": self.message}, status=500)
        page = _ERROR_PAGE.format(
            title=html.escape(self.message.splitlines()[0] if self.message else "error"),
            message=html.escape(self.message),
            traceback=html.escape(self.details),
        )
        return html_response(page, status=500, headers={"cache-control": "no-store"})

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        yield


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KitpyError):
        return str(exc)
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: {exc.msg}"
    return f"{type(exc).__name__}: {exc}"


# -- the process -----------------------------------------------------------------------


def _route_table(app: SiteApp) -> str:
    """The route table as ``kitpy routes`` prints it (indented), with its warnings."""
    from kitpy.cli.routes import render_routes, shadow_warnings

    table = render_routes(app.site) or "(no routes: add a .py file under routes/)"
    lines = [f"  {line}" for line in table.splitlines()]
    lines += [f"  {warning}" for warning in shadow_warnings(app.site)]
    return "\n".join(lines)


def _watch_lifeline(fd: int) -> None:
    """Stop this worker gracefully once the supervisor is gone (the pipe hits EOF)."""

    def wait() -> None:
        try:
            while os.read(fd, 64):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(ORPHAN_TIMEOUT)
        os._exit(1)

    threading.Thread(target=wait, name="kitpy-dev-lifeline", daemon=True).start()


class _QuietReloads(logging.Filter):
    """Drop the server's "SIGTERM received" notice: in dev, every reload sends one."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "kitpy.server" and "shutting down" in record.getMessage())


def _report(fd: int | None, state: str) -> None:
    if fd is None:
        return
    try:
        os.write(fd, f"{state}\n".encode())
        os.close(fd)
    except OSError:
        pass


def _run(args: argparse.Namespace) -> int:
    from kitpy.runtime.app import load_app
    from kitpy.server import run

    # A SIGUSR1 from the supervisor before the handler is in place must not kill us.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    out = sys.stdout
    style = Style(out)
    configure_logging(
        args.log_level, logging.Formatter("  %(levelname)s %(message)s"), filters=(_QuietReloads(),)
    )
    if args.lifeline_fd is not None:
        _watch_lifeline(args.lifeline_fd)
    sockets = [socket.socket(fileno=fd) for fd in args.listen_fd]
    for sock in sockets:
        sock.setblocking(False)
    site_app: Any
    limits: Any = None
    allowed_origins: Any = None
    try:
        loaded = load_app(Path(args.site), dev=True)
    except Exception as exc:
        message = _describe(exc)
        say(sys.stderr, style(f"  kitpy dev: {message}", "red", "bold"))
        say(sys.stderr, style("  fix it and save: the server reloads", "dim"))
        site_app = ErrorApp(message, "".join(traceback.format_exception(exc)))
        state = "broken"
    else:
        server_config = loaded.site.config.server
        if server_config.limits:
            from kitpy.protocol.limits import Limits

            settings: dict[str, Any] = dict(server_config.limits)
            limits = Limits(**settings)
        allowed_origins = server_config.allowed_origins
        if args.show_routes:
            say(out, _route_table(loaded))
        site_app = loaded
        state = "ok"
    app = DevApp(site_app, lambda line: say(out, line), style)

    options: dict[str, Any] = {
        "access_log": None,  # DevApp prints a shorter, coloured line
        "shutdown_close_code": RELOAD_CLOSE_CODE,
        "on_ready": lambda _addresses: _report(args.ready_fd, state),
        "sockets": sockets,
    }
    if limits is not None:
        options["limits"] = limits
    if allowed_origins is not None:
        options["allowed_origins"] = list(allowed_origins)
    try:
        run(app, **options)
    except InitError as exc:
        traceback.print_exception(exc.error, file=sys.stderr)
        say(sys.stderr, style(f"  kitpy dev: {exc}", "red", "bold"))
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the worker process (``python -m kitpy.cli.dev_worker SITE``)."""
    parser = argparse.ArgumentParser(prog="kitpy dev worker")
    parser.add_argument("site")
    parser.add_argument("--listen-fd", type=int, action="append", required=True)
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--lifeline-fd", type=int, default=None)
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    parser.add_argument("--show-routes", action="store_true")
    return _run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
