"""A guard in front of Triton's HTTP port: bounded body size and JSON nesting.

Triton 2.51 parses HTTP JSON bodies with rapidjson recursively: one request of ~100 KB whose
JSON is nested 50,000 deep makes tritonserver die with SIGSEGV (fixed upstream after 2.51,
triton-inference-server/common PR #156). gRPC is this project's protocol, so ``tdeploy serve``
keeps HTTP inference off unless asked (health, metadata and statistics stay open). When it is
on, Triton listens on a private loopback port and this reverse proxy takes the public one:

- a body over ``max_body_bytes`` (after decompression) gets 413;
- JSON nested deeper than ``max_json_depth`` gets 400, and never reaches Triton. For the binary
  tensor extension only the JSON header (``Inference-Header-Content-Length`` bytes) is checked;
- everything else is forwarded unchanged, responses streamed back.

    guard = HttpGuard(("127.0.0.1", 8000), upstream="http://127.0.0.1:40123").start()
    ...
    guard.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Mapping

import aiohttp
import numpy as np
from aiohttp import web

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_JSON_DEPTH", "HttpGuard", "json_depth"]

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
# KServe v2 bodies nest ~3 levels plus the tensor's rank; 64 leaves room for any real tensor.
DEFAULT_MAX_JSON_DEPTH = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-encoding",  # the body is forwarded decompressed
    }
)


def json_depth(body: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in a JSON text (strings skipped), without parsing it."""
    if body.count(b"[") + body.count(b"{") == 0:
        return 0
    stripped = _STRING.sub(b"", body)
    data = np.frombuffer(stripped, dtype=np.uint8)
    opens = (data == ord("[")) | (data == ord("{"))
    closes = (data == ord("]")) | (data == ord("}"))
    level = np.cumsum(opens.astype(np.int32) - closes.astype(np.int32))
    return int(level.max(initial=0))


class HttpGuard:
    """The reverse proxy (see the module docstring), running in a thread of its own."""

    def __init__(
        self,
        listen: tuple[str, int],
        *,
        upstream: str,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
    ) -> None:
        self.listen = listen
        self.upstream = upstream.rstrip("/")
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.rejected = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> HttpGuard:
        self._thread = threading.Thread(target=self._run, name="http-guard", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    # -- the proxy -------------------------------------------------------------------------------
    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start() if it happened while starting
            self._error = exc
        finally:
            self._ready.set()
            self._loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
            self._session = session
            app = web.Application(client_max_size=self.max_body_bytes)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            try:
                await web.TCPSite(runner, self.listen[0], self.listen[1]).start()
                self._ready.set()
                await self._stopped.wait()
            finally:
                await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self.rejected += 1
            return _error(
                413,
                f"request body over {self.max_body_bytes} bytes "
                "(tdeploy serve --http-max-body-bytes)",
            )
        problem = self._check(body, request.headers)
        if problem is not None:
            self.rejected += 1
            return _error(400, problem)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        assert self._session is not None
        try:
            async with self._session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=body
            ) as upstream:
                reply = web.StreamResponse(
                    status=upstream.status,
                    headers={
                        k: v
                        for k, v in upstream.headers.items()
                        if k.lower() not in _HOP_BY_HOP - {"content-encoding"}
                    },
                )
                await reply.prepare(request)
                async for chunk in upstream.content.iter_chunked(64 * 1024):
                    await reply.write(chunk)
                await reply.write_eof()
                return reply
        except (TimeoutError, OSError) as exc:
            return _error(502, f"the Triton HTTP endpoint did not answer: {exc}")

    def _check(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        length = headers.get("Inference-Header-Content-Length")
        json_part = body
        if length is not None:
            with contextlib.suppress(ValueError):
                json_part = body[: int(length)]
        if json_part.lstrip()[:1] not in (b"{", b"["):
            return None
        depth = json_depth(json_part)
        if depth > self.max_json_depth:
            return (
                f"JSON body nested {depth} deep; this server accepts at most "
                f"{self.max_json_depth} (tdeploy serve --http-max-json-depth). gRPC is the "
                "recommended protocol."
            )
        return None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
