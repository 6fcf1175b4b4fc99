"""The Sequence every reader returns: frames in model scale, read on demand, plus units.

A Sequence is ``len(seq)`` frames of shape (C, H, W). ``seq.frames(start, stop)`` reads
only those frames (a 10,000-frame video or a memory-mapped array is never decoded whole)
and returns float32 ``(T, C, H, W)`` in the model scale [0, 1]. ``seq.meta`` says what the
values mean in the world (units, the physical range that [0, 1] spans, the time between
frames) and where they came from; ``to_physical`` / ``from_physical`` convert.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from mimviewer.data import units as radar_units
from mimviewer.errors import DataError, ShapeError

# OpenCV prints "[ERROR:0@0.1] ... IHDR chunk shall be first" to stderr on a corrupt image:
# every reader reports such failures itself, as one line naming the file, so OpenCV stays quiet.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

UNITS: tuple[str, ...] = ("intensity", "dBZ", "mm/h")


@dataclass(frozen=True)
class SequenceMeta:
    """What a sequence's values mean and where they came from (shown by the GUI and `info`)."""

    source: str  # the file or folder read
    kind: str  # reader: "video", "images", "npy", "npz", "hdf5", "odim", "array"
    units: str  # "intensity", "dBZ" or "mm/h": the physical quantity behind the [0, 1] scale
    value_range: tuple[float, float]  # physical values at model scale 0 and 1
    frame_size: tuple[int, int]  # (H, W) of the frames returned
    original_size: tuple[int, int]  # (H, W) as stored in the file
    channels: int  # C of the frames returned
    frame_interval_s: float | None = None  # time between frames, when the file says
    zr: tuple[float, float] = (radar_units.MARSHALL_PALMER_A, radar_units.MARSHALL_PALMER_B)  # Z = a R^b
    transforms: tuple[str, ...] = ()  # what was done on the way (layout guessed, resized, ...)
    extra: dict[str, str] = field(default_factory=dict)  # reader-specific facts (dataset, quantity, ...)

    def with_changes(self, **changes) -> SequenceMeta:
        return dataclasses.replace(self, **changes)


def physical_range(units: str, value_range: tuple[float, float] | None = None) -> tuple[float, float]:
    """Physical values at model scale 0 and 1: HKO-7's -10..60 dBZ for radar."""
    if units == "dBZ":
        return (radar_units.DBZ_MIN, radar_units.DBZ_MAX)
    if units == "mm/h":
        return (0.0, float(radar_units.unit_to_rain_rate(1.0)))
    return value_range or (0.0, 1.0)


def default_value_range(dtype: np.dtype) -> tuple[float, float]:
    """Intensity range implied by a stored dtype: 0..255 for uint8, 0..65535 for uint16, else 0..1."""
    if np.issubdtype(dtype, np.integer) and dtype != np.bool_:
        return (0.0, float(np.iinfo(dtype).max)) if np.iinfo(dtype).bits <= 16 else (0.0, 1.0)
    return (0.0, 1.0)


def to_model_scale(
    raw: np.ndarray, units: str, value_range: tuple[float, float], zr: tuple[float, float]
) -> np.ndarray:
    """Stored values -> float32 model scale in [0, 1]; NaN (no data) becomes 0.

    Integer reflectivity is taken as HKO-7 pixels (``value_range`` 0..255); float
    reflectivity as dBZ; rain rates as mm/h.
    """
    values = raw.astype(np.float32, copy=False)
    if units == "dBZ" and not np.issubdtype(raw.dtype, np.integer):
        unit = radar_units.dbz_to_unit(values)
    elif units == "mm/h":
        unit = radar_units.rain_rate_to_unit(np.maximum(values, 0.0), *zr)
    else:
        lo, hi = value_range
        unit = (values - np.float32(lo)) / np.float32(hi - lo)
    unit = np.nan_to_num(unit, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(unit, 0.0, 1.0).astype(np.float32, copy=False)


def match_channels(frames: np.ndarray, channels: int | None, source: str) -> np.ndarray:
    """(T, C, H, W) -> (T, channels, H, W): RGB(A) -> grey by luma (ITU-R BT.601), grey -> RGB."""
    have = frames.shape[1]
    if channels is None or channels == have:
        return frames
    if channels == 1 and have in (3, 4):
        luma = np.array([0.299, 0.587, 0.114], np.float32)
        return np.einsum("tchw,c->thw", frames[:, :3], luma)[:, None].astype(np.float32)
    if channels == 3 and have == 1:
        return np.repeat(frames, 3, axis=1)
    if channels == 3 and have == 4:
        return frames[:, :3]
    raise ShapeError(f"{source}: frames have {have} channels; cannot make {channels} of them")


class Sequence:
    """Frames (C, H, W) in model scale, read on demand. Readers subclass it and implement
    ``_read(start, stop)`` returning float32 (stop - start, C_stored, H, W) in [0, 1]."""

    meta: SequenceMeta

    def __init__(self, length: int, meta: SequenceMeta, stored_channels: int):
        self._length = length
        self._stored_channels = stored_channels
        self.meta = meta
        self._lock = threading.Lock()  # readers keep file handles; the GUI reads from a worker

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        h, w = self.meta.frame_size
        return (
            f"<{type(self).__name__} {self.meta.source!r}: {len(self)} frames of "
            f"{self.meta.channels}x{h}x{w}, {self.meta.units}>"
        )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(T, C, H, W) of the whole sequence, as ``frames()`` would return it."""
        return (len(self), self.meta.channels, *self.meta.frame_size)

    def frames(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``start`` to ``stop`` (slice rules: negative counts from the end, clipped),
        float32 (T, C, H, W) in [0, 1]."""
        start, stop, _ = slice(start, stop).indices(len(self))
        if stop <= start:
            return np.zeros((0, *self.shape[1:]), np.float32)
        with self._lock:
            frames = self._read(start, stop)
        return match_channels(frames, self.meta.channels, self.meta.source)

    def _read(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def to_physical(self, x: np.ndarray) -> np.ndarray:
        """Model scale -> the sequence's units (dBZ, mm/h, or stored intensity values)."""
        if self.meta.units == "dBZ":
            return radar_units.unit_to_dbz(x)
        if self.meta.units == "mm/h":
            return radar_units.unit_to_rain_rate(x, *self.meta.zr)
        lo, hi = self.meta.value_range
        return x * (hi - lo) + lo

    def from_physical(self, x: np.ndarray) -> np.ndarray:
        """The sequence's units -> model scale (not clipped, except rain rate's zero)."""
        if self.meta.units == "dBZ":
            return radar_units.dbz_to_unit(x)
        if self.meta.units == "mm/h":
            return radar_units.rain_rate_to_unit(x, *self.meta.zr)
        lo, hi = self.meta.value_range
        return (x - lo) / (hi - lo)


class ArraySequence(Sequence):
    """Frames held in memory, (T, C, H, W) already in model scale (generators, tests, GUI)."""

    def __init__(self, frames: np.ndarray, meta: SequenceMeta):
        super().__init__(len(frames), meta, frames.shape[1])
        self._frames = frames

    def _read(self, start: int, stop: int) -> np.ndarray:
        return np.array(self._frames[start:stop], np.float32)  # a copy: callers may write to it


def from_array(
    frames: np.ndarray,
    *,
    units: str = "intensity",
    source: str = "<array>",
    frame_interval_s: float | None = None,
) -> Sequence:
    """An in-memory sequence from (T, C, H, W) or (T, H, W) values already in model scale [0, 1]."""
    frames = np.asarray(frames, np.float32)
    if frames.ndim == 3:
        frames = frames[:, None]
    if frames.ndim != 4:
        raise ShapeError(f"{source}: expected (T, C, H, W) or (T, H, W) frames, got shape {frames.shape}")
    if units not in UNITS:
        raise DataError(f"{source}: unknown units {units!r}; known: {', '.join(UNITS)}")
    size = (int(frames.shape[2]), int(frames.shape[3]))
    meta = SequenceMeta(
        source=source,
        kind="array",
        units=units,
        value_range=physical_range(units),
        frame_size=size,
        original_size=size,
        channels=int(frames.shape[1]),
        frame_interval_s=frame_interval_s,
    )
    return ArraySequence(frames, meta)


class FittedSequence(Sequence):
    """Another sequence resized, centre-cropped or centre-padded (with zeros) to a model's frame
    size, frame by frame."""

    def __init__(self, base: Sequence, height: int, width: int, mode: str):
        src_h, src_w = base.meta.frame_size
        if mode == "crop":
            if height > src_h or width > src_w:
                raise ShapeError(
                    f"{base.meta.source}: cannot crop {src_h}x{src_w} frames to {height}x{width}; "
                    "use mode='resize'"
                )
            self._top, self._left = (src_h - height) // 2, (src_w - width) // 2
            done = f"centre-cropped {src_h}x{src_w} -> {height}x{width} at (y={self._top}, x={self._left})"
        elif mode == "pad":
            if height < src_h or width < src_w:
                raise ShapeError(
                    f"{base.meta.source}: cannot pad {src_h}x{src_w} frames to {height}x{width}; "
                    "use --fit resize or crop"
                )
            self._top, self._left = (height - src_h) // 2, (width - src_w) // 2
            done = f"padded {src_h}x{src_w} -> {height}x{width} with zeros at (y={self._top}, x={self._left})"
        else:
            squeeze = "" if src_h * width == src_w * height else " (aspect ratio changed)"
            done = f"resized {src_h}x{src_w} -> {height}x{width}{squeeze}"
        meta = base.meta.with_changes(frame_size=(height, width), transforms=(*base.meta.transforms, done))
        super().__init__(len(base), meta, base.meta.channels)
        self._base, self._mode = base, mode

    def _read(self, start: int, stop: int) -> np.ndarray:
        frames = self._base.frames(start, stop)  # (T, C, H, W)
        height, width = self.meta.frame_size
        if self._mode == "crop":
            return frames[:, :, self._top : self._top + height, self._left : self._left + width].copy()
        if self._mode == "pad":
            out = np.zeros((*frames.shape[:2], height, width), np.float32)
            out[:, :, self._top : self._top + frames.shape[2], self._left : self._left + frames.shape[3]] = (
                frames
            )
            return out
        shrinking = height * width < frames.shape[2] * frames.shape[3]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        out = np.empty((*frames.shape[:2], height, width), np.float32)
        for t, frame in enumerate(frames):
            for c, plane in enumerate(frame):
                out[t, c] = cv2.resize(plane, (width, height), interpolation=interpolation)
        return np.clip(out, 0.0, 1.0, out=out)


FIT_MODES = ("resize", "crop", "pad")


def fit_to(seq: Sequence, height: int, width: int, mode: str = "resize") -> Sequence:
    """``seq`` at a model's frame size: ``"resize"`` (area-averaged when shrinking), a centre
    ``"crop"`` or a centre ``"pad"`` with zeros; ``meta.transforms`` records what was done.
    Returns ``seq`` if it already fits."""
    if mode not in FIT_MODES:
        raise ValueError(f"mode must be one of {', '.join(FIT_MODES)}, not {mode!r}")
    if height < 1 or width < 1:
        raise ShapeError(f"{seq.meta.source}: cannot fit frames to {height}x{width}")
    if seq.meta.frame_size == (height, width):
        return seq
    return FittedSequence(seq, height, width, mode)
