"""The live page and demo storefront over HTTP (aiohttp), run on its own thread or as its own process.

`start_web(addresses, port)` starts it on a thread with its own event loop, which is how `streamrec up` runs it
inside its supervisor: nothing more to supervise, and it stops with the stack. `streamrec web` runs the same
server as a process of its own (`run_web`), for a stack started elsewhere.

Routes: `/` live figures, `/store` storefront, `/api/live`, `/api/status`, `/api/catalogue`,
`/api/sessions/{sid}` (GET) and `/api/sessions/{sid}/clicks` (POST {"item_id": ...}), `/healthz`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web

from streamrec.observe.config import ObserveSettings, Targets, targets_from_stack
from streamrec.observe.feeds import Feeds
from streamrec.observe.storefront import MAX_QUERY_CHARS, valid_id
from streamrec.redis import RedisError
from streamrec.signals import stop_on_signals

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
SHUTDOWN_GRACE_S = 5.0  # a status call takes at most check_timeout_s (3 s by default)
FEEDS: web.AppKey[Feeds] = web.AppKey("feeds", Feeds)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


def build_app(feeds: Feeds) -> web.Application:
    app = web.Application()
    app[FEEDS] = feeds
    app.router.add_get("/", _page("live.html"))
    app.router.add_get("/store", _page("store.html"))
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/api/live", _live)
    app.router.add_get("/api/status", _status)
    app.router.add_get("/api/catalogue", _catalogue)
    app.router.add_get("/api/sessions/{sid}", _session)
    app.router.add_post("/api/sessions/{sid}/clicks", _click)
    app.router.add_get("/api/sessions/{sid}/search", _search)
    return app


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / name)

    return page


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _live(request: web.Request) -> web.Response:
    return web.json_response(request.app[FEEDS].figures.snapshot(), dumps=_dumps)


async def _status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[FEEDS].status_json(), dumps=_dumps)


async def _catalogue(request: web.Request) -> web.Response:
    return await _answer(request.app[FEEDS].storefront.catalogue(), "items")


async def _session(request: web.Request) -> web.Response:
    sid = request.match_info["sid"]
    if not valid_id(sid):
        raise web.HTTPBadRequest(text="session id: 1-128 of A-Z a-z 0-9 _ . : -")
    return await _answer(request.app[FEEDS].storefront.session(sid))


async def _search(request: web.Request) -> web.Response:
    sid, query = request.match_info["sid"], request.query.get("q", "").strip()
    if not valid_id(sid):
        raise web.HTTPBadRequest(text="session id: 1-128 of A-Z a-z 0-9 _ . : -")
    if not query or len(query) > MAX_QUERY_CHARS:
        raise web.HTTPBadRequest(text=f"q: a query of 1 to {MAX_QUERY_CHARS} characters")
    return await _answer(request.app[FEEDS].storefront.search(sid, query))


async def _click(request: web.Request) -> web.Response:
    sid = request.match_info["sid"]
    try:
        item_id = (await request.json()).get("item_id")
    except (ValueError, AttributeError):
        raise web.HTTPBadRequest(text='body must be JSON {"item_id": "..."}') from None
    if not valid_id(sid) or not valid_id(item_id):
        raise web.HTTPBadRequest(text="session and item ids: 1-128 of A-Z a-z 0-9 _ . : -")
    return await _answer(request.app[FEEDS].storefront.click(sid, item_id))


async def _answer(work: Any, key: str | None = None) -> web.Response:
    """Run a storefront call; a dependency that is down becomes a 503 the page can show, not a 500."""
    try:
        result = await work
    except grpc.aio.AioRpcError as exc:  # the client edge of the scorer
        return web.json_response({"error": f"scorer: {exc.code().name}: {exc.details()}"}, status=503)
    except (RedisError, OSError) as exc:  # Redis down, or a click Kafka did not take
        return web.json_response({"error": str(exc)}, status=503)
    return web.json_response({key: result} if key else result, dumps=_dumps)


@dataclass
class WebServer:
    """A live page running on a thread of this process; `stop()` closes it and its clients."""

    url: str
    port: int
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


def _targets(addresses: Any) -> Targets:
    return addresses if isinstance(addresses, Targets) else targets_from_stack(dataclasses.asdict(addresses))


def start_web(addresses: Any, port: int, host: str = "127.0.0.1", settings: ObserveSettings | None = None) -> WebServer:
    """Serve the live page for a stack (`StackAddresses` or `Targets`) on host:port (0 = a free port)."""
    targets, settings = _targets(addresses), settings or ObserveSettings()
    loop = asyncio.new_event_loop()
    started: dict[str, Any] = {}
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        feeds = Feeds(targets, settings)
        # in-flight requests get SHUTDOWN_GRACE_S, not aiohttp's 60 s: `stop()` waits for this thread
        runner = web.AppRunner(build_app(feeds), access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S)
        try:
            loop.run_until_complete(feeds.start())
            loop.run_until_complete(runner.setup())
            loop.run_until_complete(web.TCPSite(runner, host, port).start())
            started["port"] = runner.addresses[0][1]
            ready.set()
            loop.run_forever()
        except Exception as exc:  # a busy port, a bad TLS file: handed to the caller's thread, which raises it
            started["error"] = exc
            ready.set()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.run_until_complete(feeds.stop())
            loop.close()

    thread = threading.Thread(target=run, name="observe-web", daemon=True)
    thread.start()
    ready.wait(timeout=30)
    if "port" not in started:
        raise OSError(f"live page could not start on {host}:{port}: {started.get('error', 'timed out')}")
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    log.info("live page at http://%s:%d/ (storefront /store)", shown, started["port"])
    return WebServer(f"http://{shown}:{started['port']}", started["port"], loop, thread)


def start_stack_web(addresses: Any, settings: ObserveSettings | None = None) -> WebServer:
    """The live page of `streamrec up`: on STREAMREC_OBSERVE_WEB_PORT, or any free port when another has it."""
    settings = settings or ObserveSettings()
    try:
        return start_web(addresses, settings.web_port, settings.web_host, settings)
    except OSError as exc:
        if settings.web_port == 0:
            raise
        log.warning("%s; serving the live page on a free port instead", exc)
        return start_web(addresses, 0, settings.web_host, settings)


def run_web(targets: Targets, host: str, port: int) -> int:
    """`streamrec web`: serve until SIGTERM or Ctrl-C."""
    stop = stop_on_signals()
    server = start_web(targets, port, host)
    print(json.dumps({"live": f"{server.url}/", "store": f"{server.url}/store"}), flush=True)
    stop.wait()
    server.stop()
    return 0
