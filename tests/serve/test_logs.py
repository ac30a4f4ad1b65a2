"""The log handler: lines of one event-loop turn go out in one write, in order, none lost."""

from __future__ import annotations

import asyncio
import io
import logging

from proxy.serve.logs import BatchingStreamHandler


class CountingStream(io.StringIO):
    """A text stream that remembers each write call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def _logger(stream: CountingStream, name: str) -> logging.Logger:
    logger = logging.getLogger(f"tests.logs.{name}")
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


async def test_lines_of_one_loop_turn_are_written_once_in_order() -> None:
    """Three lines logged in one turn of the loop reach the stream in one write, in order."""
    stream = CountingStream()
    logger = _logger(stream, "turn")
    for number in range(3):
        logger.info("line %d", number)
    assert stream.writes == []
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert stream.writes == ["line 0\nline 1\nline 2\n"]


def test_outside_a_loop_a_line_is_written_at_once() -> None:
    """With no running loop (start-up, other threads) each line is written when logged."""
    stream = CountingStream()
    logger = _logger(stream, "direct")
    logger.info("first")
    assert stream.getvalue() == "first\n"
    logger.info("second")
    assert stream.writes == ["first\n", "second\n"]


async def test_flush_writes_what_is_pending() -> None:
    """flush() (what logging.shutdown calls at exit) writes the lines not yet written."""
    stream = CountingStream()
    logger = _logger(stream, "flush")
    logger.info("pending")
    handler = logger.handlers[0]
    handler.flush()
    assert stream.getvalue() == "pending\n"
    await asyncio.sleep(0)
    assert stream.getvalue() == "pending\n"  # not written twice


async def test_a_line_from_another_thread_follows_the_pending_ones() -> None:
    """A line logged off the loop's thread is written after the loop's pending lines."""
    stream = CountingStream()
    logger = _logger(stream, "thread")
    logger.info("from the loop")
    await asyncio.to_thread(logger.info, "from a thread")
    await asyncio.sleep(0)
    assert stream.getvalue() == "from the loop\nfrom a thread\n"
