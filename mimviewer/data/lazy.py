"""A long sequence used like an array of frames, read from its file only where it is looked at.

:class:`LazyFrames` stands where a ``(T, C, H, W)`` array of model-scale frames would:
``len``, ``shape``, ``frames[k]`` (one frame), ``frames[a:b]`` (those frames, read now, as
an array), ``frames[a:]`` (a lazy view) and ``np.asarray(view)`` (reads just that view).
Recently read frames are kept in a small cache of fixed-size chunks, so scrubbing back and
forth does not re-decode, and memory grows with what is looked at (at most
``CACHE_CHUNKS`` chunks of ``CHUNK_BYTES``), never with the file: a 20,000-frame file costs
what its window costs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from mimviewer.data.sequence import Sequence, match_channels

CHUNK = 32  # frames read from the file at once (fewer when frames are large: CHUNK_BYTES)
CHUNK_BYTES = 64 << 20  # at most this much per chunk, so the cache holds at most 512 MiB
CACHE_CHUNKS = 8  # chunks kept: 256 frames of ordinary size


class LazyFrames:
    """Frames ``start..stop-1`` of a Sequence as float32 (T, C, H, W) in model scale, read on demand.

    ``channels`` converts on the way (RGB -> grey by luma, grey -> RGB) as
    :func:`~mimviewer.data.sequence.match_channels` does.
    """

    ndim = 4
    dtype = np.dtype(np.float32)

    def __init__(
        self,
        seq: Sequence,
        *,
        channels: int | None = None,
        start: int = 0,
        stop: int | None = None,
        _cache: _ChunkCache | None = None,
    ):
        self.sequence = seq
        self.channels = channels or seq.meta.channels
        self._start = start
        self._stop = len(seq) if stop is None else stop
        self._cache = _cache if _cache is not None else _ChunkCache(seq, self.channels)

    def __len__(self) -> int:
        return max(0, self._stop - self._start)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.channels, *self.sequence.meta.frame_size)

    def __getitem__(self, index: Any) -> Any:
        rest: tuple = ()
        if isinstance(index, tuple):
            index, rest = index[0], index[1:]
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise IndexError("LazyFrames takes slices with step 1 only")
            if index.stop is not None:  # a bounded window ([:pre], [a:b]): read now, as an array
                block = self._cache.read(self._start + start, self._start + max(start, stop))
                return block[(slice(None), *rest)] if rest else block
            view = LazyFrames(  # open-ended ([a:]): still lazy
                self.sequence,
                channels=self.channels,
                start=self._start + start,
                stop=self._stop,
                _cache=self._cache,
            )
            return view if not rest else np.asarray(view)[(slice(None), *rest)]
        if not isinstance(index, int | np.integer):  # None, Ellipsis, index arrays: as numpy does
            return np.asarray(self)[(index, *rest)]
        k = int(index)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(f"frame {index} out of range for {len(self)} frames")
        frame = self._cache.frame(self._start + k)
        return frame[rest] if rest else frame

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self._cache.read(self._start, self._stop)
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        where = f"[{self._start}:{self._stop}] of {len(self.sequence)}"
        return f"<LazyFrames {self.sequence.meta.source!r} {where}>"


class _ChunkCache:
    """Chunks of CHUNK frames, least recently used dropped first; thread-safe (GUI worker reads)."""

    def __init__(self, seq: Sequence, channels: int):
        self._seq, self._channels = seq, channels
        frame_bytes = channels * seq.meta.frame_size[0] * seq.meta.frame_size[1] * 4
        self.chunk = max(1, min(CHUNK, CHUNK_BYTES // max(frame_bytes, 1)))  # frames per chunk
        self._chunks: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _chunk(self, index: int) -> np.ndarray:
        with self._lock:
            if index in self._chunks:
                self._chunks.move_to_end(index)
                return self._chunks[index]
        block = self._convert(self._seq.frames(index * self.chunk, (index + 1) * self.chunk))
        block.setflags(write=False)  # shared by every view: nobody may change it in place
        with self._lock:
            self._chunks[index] = block
            while len(self._chunks) > CACHE_CHUNKS:
                self._chunks.popitem(last=False)
        return block

    def _convert(self, frames: np.ndarray) -> np.ndarray:
        return match_channels(frames, self._channels, self._seq.meta.source)

    def frame(self, k: int) -> np.ndarray:
        return self._chunk(k // self.chunk)[k % self.chunk]

    def read(self, start: int, stop: int) -> np.ndarray:
        """A fresh array of frames start..stop-1 (larger than the cache: read straight from the file)."""
        if stop - start > CACHE_CHUNKS * self.chunk // 2:
            return self._convert(self._seq.frames(start, stop))
        if stop <= start:
            return np.zeros((0, self._channels, *self._seq.meta.frame_size), np.float32)
        return np.concatenate([self.frame(k)[None] for k in range(start, stop)])
