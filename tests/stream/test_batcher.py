"""Smart batching: a lone item goes at once, batches grow while one is in flight, order is kept, the buffer is
bounded, and a failed batch stops the batcher loudly."""

from __future__ import annotations

import asyncio

import pytest

from streamrec.stream.batcher import SmartBatcher


async def test_lone_items_go_alone_and_batches_grow_while_one_is_in_flight() -> None:
    seen: list[list[int]] = []
    release = asyncio.Event()

    async def handle(batch: list[int]) -> None:
        seen.append(batch)
        await release.wait()

    batcher = SmartBatcher(handle, max_batch=100, max_buffer=1000)
    await batcher.add(0)
    await asyncio.sleep(0)
    for n in range(1, 6):
        await batcher.add(n)  # arrive while batch [0] is in flight
    release.set()
    await batcher.drain()
    assert seen == [[0], [1, 2, 3, 4, 5]]


async def test_max_batch_and_order() -> None:
    seen: list[list[int]] = []

    async def handle(batch: list[int]) -> None:
        seen.append(batch)

    batcher = SmartBatcher(handle, max_batch=3, max_buffer=10)
    for n in range(8):
        batcher.buffer.append(n)  # as if they had arrived during an earlier batch
    await batcher.add(8)
    await batcher.drain()
    assert [x for b in seen for x in b] == list(range(9)) and max(len(b) for b in seen) == 3


async def test_a_full_buffer_makes_add_wait() -> None:
    release = asyncio.Event()

    async def handle(batch: list[int]) -> None:
        await release.wait()

    batcher = SmartBatcher(handle, max_batch=2, max_buffer=2)
    await batcher.add(0)
    await asyncio.sleep(0)
    await batcher.add(1)
    await batcher.add(2)
    blocked = asyncio.create_task(batcher.add(3))
    await asyncio.sleep(0.05)
    assert not blocked.done() and len(batcher.buffer) == 2  # backpressure, not growth
    release.set()
    await asyncio.wait_for(blocked, 1)
    await batcher.drain()


async def test_a_failed_batch_stops_the_batcher_and_reports() -> None:
    reported: list[BaseException] = []

    async def handle(batch: list[int]) -> None:
        raise ValueError("a bug")

    async def on_error(exc: BaseException) -> None:
        reported.append(exc)

    batcher = SmartBatcher(handle, max_batch=10, max_buffer=10, on_error=on_error)
    await batcher.add(1)
    await asyncio.sleep(0.01)
    assert isinstance(reported[0], ValueError)
    with pytest.raises(RuntimeError, match="stopped after a failed batch"):
        await batcher.add(2)


async def test_only_a_batch_after_a_large_one_lingers_to_fill() -> None:
    seen: list[list[int]] = []
    release = asyncio.Event()

    async def handle(batch: list[int]) -> None:
        seen.append(batch)
        if batch == [0]:
            await release.wait()

    async def settle() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    batcher = SmartBatcher(handle, max_batch=100, max_buffer=1000, linger_s=0.2, linger_from=3)
    await batcher.add(0)
    await settle()
    for n in (1, 2, 3):
        await batcher.add(n)  # a backlog of three forms while [0] is in flight
    release.set()
    await settle()
    await batcher.add(4)  # follows a batch of three: waits, and what arrives meanwhile joins it
    await settle()
    await batcher.add(5)
    await batcher.drain()
    await batcher.add(6)  # follows a batch of two: goes at once
    await settle()
    await batcher.add(7)
    await batcher.drain()
    assert seen == [[0], [1, 2, 3], [4, 5], [6], [7]]


async def test_a_backlog_upstream_makes_even_small_batches_linger() -> None:
    """Batches stuck small (each round trip lets one item in) still linger when the source says more wait."""
    seen: list[list[int]] = []
    waiting_upstream = {0: 0, 1: 500, 2: 499}  # item -> records behind it, as Kafka's highwater tells

    async def handle(batch: list[int]) -> None:
        seen.append(batch)

    batcher = SmartBatcher(
        handle, max_batch=100, max_buffer=1000, linger_s=0.2, linger_from=50, backlog=waiting_upstream.__getitem__
    )
    await batcher.add(0)  # nothing behind it: goes at once
    await batcher.drain()
    await batcher.add(1)  # 500 behind it: waits, and what arrives meanwhile joins it
    await asyncio.sleep(0)
    await batcher.add(2)
    await batcher.drain()
    assert seen == [[0], [1, 2]] and batcher.lingered == 1


async def test_a_linger_ends_once_a_whole_batch_is_buffered() -> None:
    seen: list[list[int]] = []

    async def handle(batch: list[int]) -> None:
        seen.append(batch)

    batcher = SmartBatcher(
        handle, max_batch=3, max_buffer=10, linger_s=30.0, linger_from=10, backlog=lambda item: 1000 if item < 3 else 0
    )
    await batcher.add(0)
    await asyncio.sleep(0)
    for n in (1, 2, 3):
        await batcher.add(n)
    await asyncio.wait_for(batcher.drain(), 5)  # not the 30 s linger
    assert seen == [[0, 1, 2], [3]]
