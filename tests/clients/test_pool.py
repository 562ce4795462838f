"""Channel recycling bookkeeping (bounded connection age), with a fake clock."""

from __future__ import annotations

import pytest

from triton_deploy.clients import UsageError
from triton_deploy.clients._pool import ChannelBook, SyncChannels


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Factory:
    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self) -> str:
        self.made.append(f"client-{len(self.made) + 1}")
        return self.made[-1]


def book(max_age: float | None = 10.0) -> tuple[ChannelBook[str], Clock, Factory]:
    clock, factory = Clock(), Factory()
    return ChannelBook(factory, max_age, clock=clock), clock, factory


def test_channel_is_reused_while_young() -> None:
    b, clock, factory = book()
    first, _ = b.checkout()
    b.checkin(first)
    clock.now += 8.9  # below the jittered age (>= 9 s)
    second, drained = b.checkout()
    assert second is first and drained is None and factory.made == ["client-1"]


def test_old_idle_channel_is_replaced_and_closed() -> None:
    b, clock, _ = book()
    first, _ = b.checkout()
    assert not b.checkin(first)
    clock.now += 10.0
    second, drained = b.checkout()
    assert second is not first and second.client == "client-2"
    assert drained is first  # nothing in flight on it: close now


def test_in_flight_calls_keep_the_old_channel_open_until_they_finish() -> None:
    b, clock, _ = book()
    busy, _ = b.checkout()  # a long call in flight
    clock.now += 11.0
    fresh, drained = b.checkout()
    assert fresh is not busy and drained is None  # not closed under a running call
    assert busy.retired and busy in b.open
    assert not b.checkin(fresh)
    assert b.checkin(busy)  # last call done: now it may be closed
    assert busy not in b.open


def test_age_has_jitter_but_never_exceeds_the_maximum() -> None:
    b, clock, _ = book(max_age=10.0)
    lifetimes = set()
    for _ in range(50):
        channel, _ = b.checkout()
        b.checkin(channel)
        assert channel.expires is not None
        lifetimes.add(round(channel.expires - channel.created, 6))
        assert 9.0 <= channel.expires - channel.created <= 10.0
        clock.now = channel.expires
    assert len(lifetimes) > 1


def test_retire_after_unavailable_opens_a_new_channel_once() -> None:
    b, _, factory = book()
    a, _ = b.checkout()
    a2, _ = b.checkout()  # same channel, two calls
    assert a is a2
    assert not b.retire(a)  # both calls still in flight
    assert not b.retire(a)  # a second failure on the same channel changes nothing
    fresh, _ = b.checkout()
    assert fresh is not a and len(factory.made) == 2
    assert not b.checkin(a)
    assert b.checkin(a)


def test_no_max_age_keeps_one_channel() -> None:
    b, clock, factory = book(max_age=None)
    channel, _ = b.checkout()
    b.checkin(channel)
    clock.now += 1e9
    assert b.checkout()[0] is channel and len(factory.made) == 1


def test_close_all_then_checkout_fails() -> None:
    closed: list[str] = []
    b, _, _ = book()
    channels = SyncChannels(b, closed.append)
    busy = channels.acquire()
    channels.close()
    assert closed == [busy.client]
    with pytest.raises(UsageError, match="closed"):
        channels.acquire()
    channels.release(busy)  # a call finishing after close must not close twice
    assert closed == [busy.client]


def test_sync_channels_close_drained_channels() -> None:
    closed: list[str] = []
    b, clock, _ = book()
    channels = SyncChannels(b, closed.append)
    old = channels.acquire()
    clock.now += 20
    new = channels.acquire()
    assert closed == []
    channels.release(old)
    assert closed == [old.client]
    channels.release(new)
    assert closed == [old.client]


def test_invalid_age() -> None:
    with pytest.raises(UsageError):
        ChannelBook(Factory(), 0.0)
