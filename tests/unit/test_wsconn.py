"""Tests of the websockets idle-memory shim: :class:`FrameQueue` in websockets' own
:class:`Assembler`, and against a deque."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.messages import Assembler
from websockets.frames import Frame, Opcode

from gateway.wsconn import FrameQueue


def assembler() -> Assembler:
    """websockets' assembler of received messages, on a FrameQueue as Connection sets up."""
    messages = Assembler()
    assert isinstance(messages.frames.queue, collections.deque)  # what the shim replaces
    messages.frames.queue = FrameQueue()  # type: ignore[assignment]
    return messages


async def test_whole_messages_pass_through_in_order() -> None:
    messages = assembler()
    for text in ("one", "two", "three"):
        messages.put(Frame(Opcode.TEXT, text.encode()))
    assert [await messages.get() for _ in range(3)] == ["one", "two", "three"]
    assert len(messages.frames) == 0


async def test_a_recv_cancelled_halfway_through_a_fragmented_message_keeps_its_frames() -> None:
    messages = assembler()
    messages.put(Frame(Opcode.TEXT, b"hel", fin=False))
    receiving = asyncio.create_task(messages.get())
    await asyncio.sleep(0)  # it took the first fragment and waits for the next
    assert not receiving.done() and len(messages.frames) == 0
    receiving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiving
    assert len(messages.frames) == 1  # the fragment is back in the queue

    messages.put(Frame(Opcode.CONT, b"lo", fin=True))
    messages.put(Frame(Opcode.TEXT, b"next"))
    assert await messages.get() == "hello"
    assert await messages.get() == "next"


async def test_a_recv_cancelled_after_several_fragments_keeps_them_in_order() -> None:
    messages = assembler()
    receiving = asyncio.create_task(messages.get())
    for part in (b"a", b"b", b"c"):
        messages.put(Frame(Opcode.TEXT if part == b"a" else Opcode.CONT, part, fin=False))
        await asyncio.sleep(0)
    receiving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await receiving
    messages.put(Frame(Opcode.CONT, b"d", fin=True))
    assert await messages.get() == "abcd"


# the deque methods websockets' SimpleQueue calls on its queue, across releases
Op = tuple[str, list[int]]
OPS: st.SearchStrategy[Op] = st.one_of(
    st.tuples(st.just("append"), st.lists(st.integers(), min_size=1, max_size=1)),
    st.tuples(st.just("popleft"), st.just([])),
    st.tuples(st.just("extend"), st.lists(st.integers(), max_size=5)),
    st.tuples(st.just("extendleft"), st.lists(st.integers(), max_size=5)),
)


@given(st.lists(OPS, max_size=200))
def test_frame_queue_behaves_like_a_deque(ops: list[Op]) -> None:
    queue = FrameQueue()
    model: collections.deque[int] = collections.deque()
    for name, args in ops:
        if name == "append":
            queue.append(args[0])
            model.append(args[0])
        elif name == "popleft":
            if model:
                assert queue.popleft() == model.popleft()
            else:
                with pytest.raises(IndexError):
                    queue.popleft()
        else:
            getattr(queue, name)(iter(args))
            getattr(model, name)(iter(args))
        assert len(queue) == len(model)
    assert [queue.popleft() for _ in range(len(queue))] == list(model)


def test_a_long_burst_is_compacted_and_keeps_no_popped_frame() -> None:
    queue = FrameQueue()
    frames: list[Any] = [object() for _ in range(100)]
    for frame in frames:
        queue.append(frame)
    for frame in frames[:60]:
        assert queue.popleft() is frame
    kept = queue._items
    assert len(kept) < 100  # compacted in bulk
    assert not any(frame in kept for frame in frames[:60])
    queue.extendleft([frames[59]])
    assert queue.popleft() is frames[59]
