"""A network-like stream of text chunks for demos and tests (the reference's simulator).

`simulate_stream` yields event dicts: ``{"type": "data", "chunk", ...}`` with delays,
jitter, bursts and stalls drawn from a `StreamConfig`, then ``{"type": "complete", ...}``.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from pydantic import BaseModel, Field, model_validator

from ._cancelable import Cancelable

__all__ = ("StreamConfig", "get_random_chunk_size", "simulate_stream")


class StreamConfig(BaseModel):
    """How `simulate_stream` paces and cuts its text (a pydantic model: fields are checked).

    ``variable_chunk_size`` without ``chunk_size_range`` uses ``(chunk_size // 2 or 1,
    chunk_size * 2)``; a range whose minimum is below 1 or above its maximum is a ValueError.
    """

    chunk_size: int = Field(default=1, ge=1, description="Base chunk size")
    base_delay: float = Field(default=0.05, ge=0, description="Base delay between chunks (s)")
    jitter: float = Field(default=0.02, ge=0, description="Largest jitter added to or taken from a delay (s)")
    jitter_probability: float = Field(default=0.3, ge=0, le=1, description="Chance that a delay is jittered")
    burst_probability: float = Field(default=0.1, ge=0, le=1, description="Chance of a burst of quick chunks")
    burst_size: int = Field(default=3, ge=1, description="Chunks in a burst")
    stall_probability: float = Field(default=0.05, ge=0, le=1, description="Chance of a stall (a long delay)")
    stall_duration: float = Field(default=0.5, ge=0, description="Length of a stall (s)")
    variable_chunk_size: bool = Field(default=False, description="Draw each chunk's size from the range")
    chunk_size_range: tuple[int, int] | None = Field(default=None, description="(min, max) chunk sizes")
    chunk_size_weights: list[float] | None = Field(default=None, description="Weights of the sizes, smallest first")

    @model_validator(mode="after")
    def _check_range(self) -> StreamConfig:
        if self.variable_chunk_size and self.chunk_size_range is None:
            self.chunk_size_range = (max(1, self.chunk_size // 2), self.chunk_size * 2)
        if self.chunk_size_range is not None:
            low, high = self.chunk_size_range
            if low < 1:
                raise ValueError(f"Minimum chunk size must be at least 1, got {low}")
            if low > high:
                raise ValueError(f"Minimum chunk size cannot be greater than maximum chunk size ({low} > {high})")
        return self


def get_random_chunk_size(config: StreamConfig) -> int:
    """The size of the next chunk: ``chunk_size``, or a draw from the range (weighted by
    ``chunk_size_weights``, missing weights counting 1)."""
    if not config.variable_chunk_size:
        return config.chunk_size
    if config.chunk_size_range is None:
        raise RuntimeError("No chunk size range provided with variable_chunk_size")
    low, high = config.chunk_size_range
    sizes = range(low, high + 1)
    if not config.chunk_size_weights:
        return random.randint(low, high)  # noqa: S311 - a simulation, not cryptography
    weights = list(config.chunk_size_weights[: len(sizes)])
    weights += [1.0] * (len(sizes) - len(weights))
    return random.choices(sizes, weights=weights)[0]  # noqa: S311


async def simulate_stream(
    text: str, config: StreamConfig | None = None, cancelable: Cancelable | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Stream ``text`` in chunks, as a flaky network would.

    Events: ``data`` (``chunk``, ``chunk_size``, ``requested_chunk_size``, ``position``,
    ``total_length``, ``timestamp``, ``burst``, ``chunk_number``), ``stall``
    (``duration``, ``timestamp``) and a final ``complete`` (``timestamp``,
    ``total_chunks``).  With ``cancelable`` (a running operation) its token is checked
    before each chunk and progress is reported on stalls and every 10 chunks.

    Cancellation: no scope is held across ``yield``; a cancelled ``cancelable`` ends it at
    the next check (its typed error, or the pending cancellation of the current scope).
    """
    config = config or StreamConfig()
    started = time.time()
    total = len(text)
    pos = count = 0

    def data(chunk: str, requested: int, burst: bool) -> dict[str, Any]:
        return {
            "type": "data", "chunk": chunk, "chunk_size": len(chunk), "requested_chunk_size": requested,
            "position": pos, "total_length": total, "timestamp": time.time() - started, "burst": burst,
            "chunk_number": count,
        }

    while pos < total:
        if cancelable is not None:
            await cancelable.token.check_async()
        if random.random() < config.stall_probability:  # noqa: S311
            await anyio.sleep(config.stall_duration)
            if cancelable is not None:
                await cancelable.report_progress(
                    f"Network stall: {config.stall_duration:.3f}s", {"type": "stall", "duration": config.stall_duration}
                )
            yield {"type": "stall", "duration": config.stall_duration, "timestamp": time.time() - started}
        if random.random() < config.burst_probability:  # noqa: S311
            for _ in range(config.burst_size):
                if pos >= total:
                    break
                if cancelable is not None:
                    await cancelable.token.check_async()
                size = get_random_chunk_size(config)
                chunk = text[pos : pos + size]
                pos += len(chunk)
                count += 1
                yield data(chunk, size, True)
                await anyio.sleep(0.001)
            continue
        size = get_random_chunk_size(config)
        chunk = text[pos : pos + size]
        pos += len(chunk)
        count += 1
        delay = config.base_delay
        if random.random() < config.jitter_probability:  # noqa: S311
            delay += random.uniform(-config.jitter, config.jitter)  # noqa: S311
        await anyio.sleep(max(0.0, delay))
        yield data(chunk, size, False)
        if cancelable is not None and count % 10 == 0:
            percent = pos / total * 100
            await cancelable.report_progress(
                f"Stream progress: {percent:.1f}%",
                {"chunks_sent": count, "bytes_sent": pos, "total_bytes": total, "progress_percent": percent},
            )
    yield {"type": "complete", "timestamp": time.time() - started, "total_chunks": count}
