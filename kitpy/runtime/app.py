"""SiteApp: a loaded site as the server's ``types.App``.

One request goes through these steps:

1. ``/about/`` answers 308 with ``Location: /about`` (query kept); ``/`` stays
   (docs/routes.md, "Trailing slashes"). This happens before the hooks.
2. Behind a trusted proxy, the client address and scheme come from X-Forwarded-*.
3. The route is matched, so hooks see ``event.route`` and ``event.params``.
4. ``handle(event, resolve)`` runs (the hooks' chain, or just ``resolve``);
   ``resolve`` tries ``static/`` first (a file wins over a route at the same path),
   then the route's handler. Errors inside ``resolve`` become responses there, so a
   hook gets the 404 or 500 as a Response it may decorate.
5. Cookies set through ``event.cookies`` are added to the final response.

``lifespan()`` owns every background task: the durable object system (object tasks,
alarms) and the tasks started by ``event.platform.wait_until``. Entering it runs
``init()`` of hooks.py once, after the objects are up and before the first request.

The object system is built by an :data:`ObjectsFactory`: by default the embedded one
(SQLite in the state folder, one process). The CLI passes another one (a cluster
node's) when kitpy.toml has ``[cluster]``; this layer never imports it.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.abc import TaskGroup

from kitpy.errors import HTTPError, InitError
from kitpy.http.request import Request
from kitpy.http.response import Response, text
from kitpy.http.results import ResultError, to_response
from kitpy.http.websocket import WebSocketClosed
from kitpy.runtime.compress import compress_response
from kitpy.runtime.config import ServerConfig
from kitpy.runtime.dispatch import dispatch, strip_body, timed_out
from kitpy.runtime.event import (
    Env,
    Platform,
    RequestEvent,
    client_and_url,
    make_event,
    set_cookie_headers,
)
from kitpy.runtime.hooks import (
    call_handle,
    http_error_response,
    unexpected_error_response,
)
from kitpy.runtime.site import Site, load_site
from kitpy.runtime.static import REFRESH_EVERY, StaticFiles

if TYPE_CHECKING:
    from kitpy.objects import ObjectSystem

__all__ = ("ObjectsFactory", "SiteApp", "embedded_objects", "load_app")

logger = logging.getLogger("kitpy")

#: How long ``lifespan()`` waits at exit for ``wait_until`` tasks before cancelling them.
DEFAULT_TASK_GRACE = 10.0


class ObjectsFactory(Protocol):
    """Builds a site's running object system; its context runs it until exit.

    ``site`` gives the bindings and the config, ``env`` is what each object receives
    as ``env``, ``state_dir`` the site's state folder (the embedded store lives there).
    """

    def __call__(
        self, site: Site, env: Any, state_dir: Path, /
    ) -> AbstractAsyncContextManager[ObjectSystem]: ...


@asynccontextmanager
async def embedded_objects(site: Site, env: Any, state_dir: Path) -> AsyncIterator[ObjectSystem]:
    """The default: every object in this process, storage in ``state_dir``'s SQLite file."""
    from kitpy.objects import ObjectSystem
    from kitpy.storage import SqliteBackend

    await anyio.Path(state_dir).mkdir(parents=True, exist_ok=True)
    backend = SqliteBackend(state_dir / "storage.sqlite3")
    try:
        system = ObjectSystem(
            backend, site.bindings, env, idle_timeout=site.config.server.object_idle_timeout
        )
        async with system.run():
            yield system
    finally:
        await backend.aclose()


def load_app(
    site_dir: Path,
    *,
    dev: bool = False,
    state_dir: Path | None = None,
    objects: ObjectsFactory | None = None,
    index_static: bool = False,
) -> SiteApp:
    """Load the site at ``site_dir`` and return the app the server runs.

    ``dev`` shows tracebacks in 500 responses; ``state_dir`` is where durable storage
    lives (default: the site's ``.kitpy/``); ``objects`` builds the object system
    (default: :func:`embedded_objects`); ``index_static`` lists ``static/`` when the
    lifespan starts, so that paths naming no file skip the disk (``kitpy serve``).

    Raises:
        SiteError: the site is broken (names the file and line).
    """
    return SiteApp(
        load_site(site_dir),
        dev=dev,
        state_dir=state_dir,
        objects=objects,
        index_static=index_static,
    )


class SiteApp:
    """``await app(request) -> Response`` inside ``async with app.lifespan():``."""

    def __init__(
        self,
        site: Site,
        *,
        dev: bool = False,
        state_dir: Path | None = None,
        objects: ObjectsFactory | None = None,
        index_static: bool = False,
    ) -> None:
        self.site = site
        self.dev = dev
        self.index_static = index_static
        self.state_dir = state_dir if state_dir is not None else site.state_dir
        self.objects: ObjectsFactory = objects if objects is not None else embedded_objects
        self.env = Env(site.config.env)
        self.platform = Platform(self.env, self._wait_until)
        self.task_grace = float(
            site.config.server.limits.get("shutdown_timeout", DEFAULT_TASK_GRACE)
        )
        self._static = _static_files(site.static_dir, site.config.server)
        # Read once here, not per request (the config is frozen).
        server = site.config.server
        self._trusts_proxies = bool(server.trusted_proxies)
        self._cookie_secret = server.cookie_secret
        self._handler_timeout = server.handler_timeout
        self._compress = server.compress
        self._find = site.table.find
        #: Nothing between the route and its handler but hooks.py's handle(), which
        #: __call__ checks per request: it may answer in its own frame.
        self._direct = (
            self._static is None
            and not self._trusts_proxies
            and self._handler_timeout is None
            and not self._compress
        )
        self._tasks: TaskGroup | None = None
        self._loop_thread: int | None = None
        self._running = 0
        self._idle: anyio.Event | None = None

    # -- lifespan ----------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Run the object system, then ``init()``, and own ``wait_until`` tasks until exit.

        Raises:
            InitError: ``init()`` raised (the exception is its ``error``).
        """
        async with AsyncExitStack() as stack:
            if self.site.bindings:
                await self._start_objects(stack)
            if self.site.init is not None:
                await self._init(self.site.init)
            if self.index_static and self._static is not None:
                # After init(): what it writes to static/ is served too.
                await anyio.to_thread.run_sync(self._static.index)
            async with anyio.create_task_group() as tasks:
                self._tasks = tasks
                self._loop_thread = threading.get_ident()
                if self.index_static and self._static is not None:
                    tasks.start_soon(_keep_indexed, self._static)
                try:
                    yield
                finally:
                    self._tasks = None
                    if self._running:
                        self._idle = anyio.Event()
                        with anyio.move_on_after(self.task_grace, shield=True):
                            await self._idle.wait()
                    tasks.cancel_scope.cancel()

    async def _start_objects(self, stack: AsyncExitStack) -> None:
        system = await stack.enter_async_context(self.objects(self.site, self.env, self.state_dir))
        for name in self.site.bindings:
            self.env._set(name, system.namespace(name))

    async def _init(self, init: Callable[..., Any]) -> None:
        """Run ``init()`` (or ``init(env)`` when it takes an argument), sync or async."""
        try:
            takes_env = bool(inspect.signature(init).parameters)
        except (TypeError, ValueError):
            takes_env = False
        try:
            result = init(self.env) if takes_env else init()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            raise InitError(exc) from exc

    def _wait_until(self, awaitable: Awaitable[Any]) -> None:
        if not inspect.isawaitable(awaitable):
            raise TypeError(
                f"wait_until() takes a coroutine or awaitable, got {type(awaitable).__name__}"
            )
        tasks = self._tasks
        if tasks is None:
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise RuntimeError("wait_until() needs a running app (inside app.lifespan())")
        self._running += 1

        async def run() -> None:
            try:
                await awaitable
            except WebSocketClosed as closed:
                # The other side closed the socket the task was talking to: the end
                # of a conversation, not a server error (no traceback).
                logger.debug("a wait_until() task ended: %s", closed)
            except Exception:
                logger.exception("a wait_until() task failed")
            finally:
                self._running -= 1
                if self._running == 0 and self._idle is not None:
                    self._idle.set()

        if threading.get_ident() == self._loop_thread:
            tasks.start_soon(run)
        else:  # a plain-def handler in a worker thread
            anyio.from_thread.run_sync(tasks.start_soon, run)

    # -- requests ----------------------------------------------------------------------

    async def __call__(self, request: Request) -> Response:
        try:
            site = self.site
            if not self._direct or site.handle is not None:
                return await self._respond(request)
            # The common configuration: what _respond, _resolve and dispatch do there,
            # in this one frame (each coroutine layer costs about a microsecond).
            raw_path = request.url.raw_path
            if len(raw_path) > 1 and raw_path[-1] == "/":
                return _trailing_slash_redirect(request)
            found = self._find(raw_path)
            if found is None:
                event = make_event(
                    request, self.platform, {}, None, request.client, self._cookie_secret
                )
                endpoint = None
            else:
                route_id = found[0].id
                event = make_event(
                    request, self.platform, found[1], route_id, request.client, self._cookie_secret
                )
                endpoint = site.endpoints.get(route_id) if route_id else None
            where = "static/"
            try:
                if endpoint is None:
                    raise HTTPError(404)
                where = endpoint.file
                method = request.method
                call = endpoint._calls.get(method, endpoint._fallback)  # call_for(), inline
                if call is None or not call.on_loop:
                    response = await dispatch(endpoint, event)
                else:
                    try:
                        if call.is_async:
                            result = await call.handler(event)
                        else:
                            result = call.handler(event)
                        if type(result) is not dict and inspect.isawaitable(result):
                            result = await result
                    except TimeoutError:
                        raise timed_out(call, None) from None
                    response = to_response(result, call.where)
                    if method == "HEAD":
                        await strip_body(response)
            except Exception as exc:
                response = await self._resolve_failed(exc, event, where)
            cookies = event._cookies
            if cookies is not None:
                for value in cookies.set_cookie_headers():
                    response.headers.add("set-cookie", value)
            return response
        except Exception:  # pragma: no cover - a bug in kitpy itself; keep serving
            logger.exception("kitpy failed to answer %s %s", request.method, request.url)
            return text("Internal Server Error", 500)

    async def _respond(self, request: Request) -> Response:
        raw_path = request.url.raw_path
        if len(raw_path) > 1 and raw_path.endswith("/"):
            return _trailing_slash_redirect(request)
        if self._trusts_proxies:
            client, request = client_and_url(request, self.site.config.server)
        else:
            client = request.client
        found = self._find(raw_path)
        if found is None:
            event = make_event(request, self.platform, {}, None, client, self._cookie_secret)
        else:
            event = make_event(
                request, self.platform, found[1], found[0].id, client, self._cookie_secret
            )
        handle = self.site.handle
        try:
            if handle is None:
                response = await self._resolve(event)
            else:
                result = await call_handle(handle, event, self._resolve)
                response = to_response(result, "hooks.py: handle()")
        except HTTPError as exc:
            response = http_error_response(exc, event.request)
        except ResultError as exc:
            logger.error("%s", exc)
            response = await self._unexpected(exc, event)
        except Exception as exc:
            logger.error("hooks.py: handle() raised", exc_info=exc)
            response = await self._unexpected(exc, event)
        for value in set_cookie_headers(event):
            response.headers.add("set-cookie", value)
        if self._compress:
            server = self.site.config.server
            response = await compress_response(
                event.request,
                response,
                min_bytes=server.compress_min_bytes,
                streams=server.compress_streams,
            )
        return response

    async def _resolve(self, event: RequestEvent) -> Response:
        """Static file, else the route's handler; errors become responses here."""
        where = "static/"
        try:
            if self._static is not None:
                found = await self._static.respond(event.request)
                if found is not None:
                    return found
            endpoint = self.site.endpoints.get(event.route) if event.route else None
            if endpoint is None:
                page = await self._static.fallback(event.request) if self._static else None
                if page is not None:
                    return page
                raise HTTPError(404)
            where = endpoint.file
            return await dispatch(endpoint, event, time_limit=self._handler_timeout)
        except Exception as exc:
            return await self._resolve_error(exc, event, where)

    async def _resolve_error(self, exc: Exception, event: RequestEvent, where: str) -> Response:
        """The response ``_resolve`` gives when ``where`` (a route file) raised ``exc``."""
        if isinstance(exc, HTTPError):
            return http_error_response(exc, event.request)
        if isinstance(exc, ResultError):
            logger.error("%s", exc)
        else:
            logger.error("%s: %s raised", where, event.request.method, exc_info=exc)
        return await self._unexpected(exc, event)

    async def _resolve_failed(self, exc: Exception, event: RequestEvent, where: str) -> Response:
        """:meth:`_resolve_error`, and what ``_respond`` makes of an error raised there
        (the direct path of ``__call__`` stands for both)."""
        try:
            return await self._resolve_error(exc, event, where)
        except HTTPError as inner:
            return http_error_response(inner, event.request)
        except ResultError as inner:
            logger.error("%s", inner)
            return await self._unexpected(inner, event)
        except Exception as inner:
            logger.error("hooks.py: handle() raised", exc_info=inner)
            return await self._unexpected(inner, event)

    async def _unexpected(self, exc: BaseException, event: RequestEvent) -> Response:
        return await unexpected_error_response(
            exc, event, dev=self.dev, handle_error=self.site.handle_error
        )

    def close(self) -> None:
        """Unload the site's modules (after the lifespan is over)."""
        self.site.close()


async def _keep_indexed(static: StaticFiles) -> None:
    """Take in files added to ``static/`` while serving (until cancelled)."""
    while True:
        await anyio.sleep(REFRESH_EVERY)
        try:
            await anyio.to_thread.run_sync(static.refresh)
        except Exception:  # a broken folder must not stop the refresher
            logger.exception("static/ could not be listed again")


def _trailing_slash_redirect(request: Request) -> Response:
    # Relative Location; leading slashes collapse so "//evil.example/" cannot become a
    # protocol-relative redirect to another host.
    location = "/" + request.url.raw_path.strip("/")
    if request.url.query_string:
        location += "?" + request.url.query_string
    return Response(None, 308, {"location": location})


def _static_files(directory: Path, server: ServerConfig) -> StaticFiles | None:
    if not directory.is_dir():
        return None
    return StaticFiles(
        directory,
        immutable=server.immutable_assets,
        precompressed=server.precompressed,
        spa_fallback=server.spa_fallback,
    )
