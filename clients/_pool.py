"""Bounded connection age: recycle the gRPC channel so that traffic follows a blue/green switch.

gRPC keeps one long-lived HTTP/2 connection per channel. Behind a Kubernetes Service (an L4
load balancer) a selector switch only affects *new* connections, so a client that never
reconnects keeps talking to the old color until its pods die. The client therefore holds its
tritonclient ``InferenceServerClient`` (one gRPC channel) for at most ``max_connection_age_s``
(minus up to 10 % random jitter, so that many replicas do not reconnect in lockstep):

- a call that finds the current channel too old retires it and opens a new one (new TCP
  connection, fresh DNS resolution: ``grpc.use_local_subchannel_pool`` keeps gRPC from
  reusing the old connection through its global subchannel pool);
- calls already in flight on a retired channel finish on it; it is closed when the last one
  returns, never under a running call;
- a call that fails with UNAVAILABLE on a channel whose connection had worked (server gone,
  connection reset, GOAWAY after the server's own ``--grpc-max-connection-age``) retires the
  channel too, so the retry reconnects and re-resolves DNS; a channel that never reached the
  server is kept for the retries (gRPC reconnects it itself, with its own backoff), so an
  outage costs one new channel, not one per failed attempt.

So after a switch, new calls reach the new color within ``max_connection_age_s`` (plus one
connection set-up), without failing a call. ``ChannelBook`` is the bookkeeping, free of I/O;
``SyncChannels`` (a lock, blocking close) and ``AsyncChannels`` (awaited close) wrap it.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from ._errors import UsageError

__all__ = ["AsyncChannels", "Channel", "ChannelBook", "SyncChannels"]

C = TypeVar("C")

# Channels live between (1 - _AGE_JITTER) * max age and max age.
_AGE_JITTER = 0.1


class Channel(Generic[C]):
    """One tritonclient client (one gRPC channel) and its bookkeeping."""

    __slots__ = ("answered", "client", "created", "expires", "in_flight", "number", "retired")

    def __init__(self, client: C, number: int, created: float, expires: float | None) -> None:
        self.client = client
        self.number = number
        self.created = created
        self.expires = expires
        self.in_flight = 0
        self.retired = False
        # The server answered a call on this channel: its connection worked at least once.
        self.answered = False

    def __repr__(self) -> str:
        return f"<Channel #{self.number} in_flight={self.in_flight} retired={self.retired}>"


class ChannelBook(Generic[C]):
    """Which channel serves the next call, and which retired channel may be closed now."""

    def __init__(
        self,
        factory: Callable[[], C],
        max_age_s: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if max_age_s is not None and not max_age_s > 0:
            raise UsageError(f"max_connection_age_s must be > 0 or None, got {max_age_s!r}")
        self.factory = factory
        self.max_age_s = max_age_s
        self.clock = clock
        self.rng = rng or random.Random()
        self.current: Channel[C] | None = None
        self.open: set[Channel[C]] = set()  # current and retired-but-busy channels
        self.created = 0
        self.closed = False

    def checkout(self) -> tuple[Channel[C], Channel[C] | None]:
        """The channel for a call (counted in flight), and a drained channel to close, if any."""
        if self.closed:
            raise UsageError("the client is closed; create a new one")
        channel = self.current
        drained = None
        now = self.clock()
        if channel is not None and channel.expires is not None and now >= channel.expires:
            drained = channel if self._retire(channel) else None
            channel = None
        if channel is None:
            channel = self._open(now)
        channel.in_flight += 1
        return channel, drained

    def checkin(self, channel: Channel[C]) -> bool:
        """A call on ``channel`` is done; True when the channel is retired and now idle."""
        channel.in_flight -= 1
        if channel.retired and channel.in_flight == 0 and channel in self.open:
            self.open.discard(channel)
            return True
        return False

    def retire(self, channel: Channel[C]) -> bool:
        """Stop using ``channel`` for new calls; True when it can be closed at once."""
        return self._retire(channel)

    def close_all(self) -> list[Channel[C]]:
        """Closing the client: every open channel, busy or not."""
        self.closed = True
        channels = list(self.open)
        for channel in channels:
            channel.retired = True
        self.open.clear()
        self.current = None
        return channels

    def _retire(self, channel: Channel[C]) -> bool:
        if self.current is channel:
            self.current = None
        if channel.retired:
            return False
        channel.retired = True
        if channel.in_flight == 0 and channel in self.open:
            self.open.discard(channel)
            return True
        return False

    def _open(self, now: float) -> Channel[C]:
        expires = None
        if self.max_age_s is not None:
            expires = now + self.max_age_s * (1.0 - _AGE_JITTER * self.rng.random())
        self.created += 1
        channel = Channel(self.factory(), self.created, now, expires)
        self.current = channel
        self.open.add(channel)
        return channel


class SyncChannels(Generic[C]):
    """``ChannelBook`` for threads: checkout/checkin under a lock, closes outside it."""

    def __init__(self, book: ChannelBook[C], close: Callable[[C], object]) -> None:
        self.book = book
        self._close = close
        self._lock = threading.Lock()

    def acquire(self) -> Channel[C]:
        with self._lock:
            channel, drained = self.book.checkout()
        if drained is not None:
            self._close_quietly(drained)
        return channel

    def release(self, channel: Channel[C]) -> None:
        with self._lock:
            idle = self.book.checkin(channel)
        if idle:
            self._close_quietly(channel)

    def discard(self, channel: Channel[C]) -> None:
        """After a connection-level failure: the next call opens a new channel."""
        with self._lock:
            idle = self.book.retire(channel)
        if idle:
            self._close_quietly(channel)

    def close(self) -> None:
        with self._lock:
            channels = self.book.close_all()
        for channel in channels:
            self._close_quietly(channel)

    def _close_quietly(self, channel: Channel[C]) -> None:
        with contextlib.suppress(Exception):
            self._close(channel.client)


class AsyncChannels(Generic[C]):
    """``ChannelBook`` for one event loop: no lock needed, closes are awaited."""

    def __init__(self, book: ChannelBook[C], close: Callable[[C], Awaitable[object]]) -> None:
        self.book = book
        self._close = close

    async def acquire(self) -> Channel[C]:
        channel, drained = self.book.checkout()
        if drained is not None:
            await self._close_quietly(drained)
        return channel

    async def release(self, channel: Channel[C]) -> None:
        if self.book.checkin(channel):
            await self._close_quietly(channel)

    async def discard(self, channel: Channel[C]) -> None:
        if self.book.retire(channel):
            await self._close_quietly(channel)

    async def close(self) -> None:
        for channel in self.book.close_all():
            await self._close_quietly(channel)

    async def close_channel(self, channel: Channel[C]) -> None:
        """Close one channel the book handed back as idle (errors ignored)."""
        await self._close_quietly(channel)

    async def _close_quietly(self, channel: Channel[C]) -> None:
        with contextlib.suppress(Exception):
            await self._close(channel.client)
