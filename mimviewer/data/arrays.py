"""Arrays on disk (.npy, .npz, HDF5) in any axis order, sliced lazily.

A layout string names the axes: ``T`` time, ``N`` sequence, ``C`` channel, ``H``, ``W``.
Moving MNIST's ``mnist_test_seq.npy`` is ``TNHW``; SEVIR's HDF5 is ``NHWT``; our generators
give ``NTCHW``. Without a layout one is guessed from the shape (and recorded in
``meta.transforms``). Only the frames asked for are read: .npy files and uncompressed .npz
members are memory-mapped, HDF5 datasets are sliced by h5py.

PredRNN's own Moving MNIST files (``.npz`` with ``input_raw_data``, ``clips``, ``dims``) are
read as that code reads them: sequence i is the input clip followed by the output clip.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from mimviewer.data.normalise import intensity_divisor
from mimviewer.data.sequence import (
    UNITS,
    Sequence,
    SequenceMeta,
    default_value_range,
    physical_range,
    to_model_scale,
)
from mimviewer.errors import DataError, ShapeError

_CHANNEL_SIZES = (1, 2, 3, 4)


def guess_layout(shape: tuple[int, ...], source: str = "array") -> str:
    """The most likely axis order of an array of frames, from its shape alone."""
    if len(shape) == 2:
        return "HW"
    if len(shape) == 3:
        return "THW"
    if len(shape) == 4:
        if shape[1] in (1, 3) and shape[3] not in _CHANNEL_SIZES:
            return "TCHW"
        if shape[3] in _CHANNEL_SIZES:
            return "THWC"
        if shape[1] == shape[2] and shape[3] != shape[1]:
            return "NHWT"  # SEVIR: square frames, time last
        return "TNHW"  # Moving MNIST
    if len(shape) == 5:
        return "NTCHW" if shape[2] in _CHANNEL_SIZES else "NTHWC"
    raise ShapeError(
        f"{source}: an array of shape {shape} has {len(shape)} axes; frames are read from 2 to 5 axes "
        "(time T, height H, width W, and optionally channels C and sequences N)"
    )


def _check_layout(layout: str, shape: tuple[int, ...], source: str) -> str:
    layout = layout.upper()
    if (
        sorted(layout) != sorted(set(layout))
        or not set(layout) <= set("NTCHW")
        or not {"H", "W"} <= set(layout)
    ):
        raise ShapeError(
            f"{source}: layout {layout!r} must name distinct axes from N, T, C, H, W incl. H and W"
        )
    if len(layout) != len(shape):
        raise ShapeError(
            f"{source}: layout {layout!r} has {len(layout)} axes but the array has shape {shape}"
        )
    return layout


class LazyArraySequence(Sequence):
    """One sequence out of an array-like (numpy memmap, h5py dataset) with named axes."""

    def __init__(
        self,
        array: Any,
        *,
        source: str,
        kind: str,
        layout: str | None = None,
        sequence: int = 0,
        units: str | None = None,
        channels: int | None = None,
        value_range: tuple[float, float] | None = None,
        frame_interval_s: float | None = None,
        time_window: tuple[int, int] | None = None,
        extra: dict[str, str] | None = None,
        keep: Any = None,
    ):
        shape = tuple(int(n) for n in array.shape)
        dtype = np.dtype(array.dtype)
        if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)) or dtype == np.bool_:
            what = {"S": "byte strings", "U": "text", "O": "Python objects", "b": "true/false values"}
            raise DataError(
                f"{source}: holds {what.get(dtype.kind, str(dtype))} ({dtype}), not numbers: "
                "frames must be integers or floats"
            )
        transforms = []
        if layout is None:
            layout = guess_layout(shape, source)
            transforms.append(f"axes {layout} (guessed from its shape {shape})")
        layout = _check_layout(layout, shape, source)
        units = units or "intensity"
        if units not in UNITS:
            raise DataError(f"{source}: unknown units {units!r}; known: {', '.join(UNITS)}")
        dims = dict(zip(layout, shape, strict=True))
        count = dims.get("N", 1)
        if not -count <= sequence < count:
            raise DataError(f"{source}: sequence {sequence} does not exist; the file holds {count}")
        sequence %= count
        if "N" in dims:
            transforms.append(f"sequence {sequence} of {count}")
        length = dims.get("T", 1)
        self._offset = 0
        if time_window is not None:
            self._offset, length = time_window
        self._array, self._layout, self._sequence, self._keep = array, layout, sequence, keep
        self._source = source
        self._stored_range = value_range or default_value_range(np.dtype(array.dtype))
        # float intensities follow the one input rule (mimviewer.data.normalise), checked on
        # every frame read: frame 0 decides between [0, 1] and 0..255
        self._checked = (
            value_range is None and units == "intensity" and np.issubdtype(np.dtype(array.dtype), np.floating)
        )
        if self._checked:
            divisor, note = intensity_divisor(self._raw(0, min(length, 1)), f"{source} (frame 0)")
            self._stored_range = (0.0, divisor)
            if note:
                transforms.append(f"{note} (from frame 0)")
        size = (dims["H"], dims["W"])
        meta = SequenceMeta(
            source=source,
            kind=kind,
            units=units,
            value_range=physical_range(units, self._stored_range),
            frame_size=size,
            original_size=size,
            channels=channels or dims.get("C", 1),
            frame_interval_s=frame_interval_s,
            transforms=tuple(transforms),
            extra={
                "layout": layout,
                "shape": "x".join(map(str, shape)),
                "dtype": str(array.dtype),
                **(extra or {}),
            },
        )
        super().__init__(length, meta, dims.get("C", 1))

    def _read(self, start: int, stop: int) -> np.ndarray:
        block = self._raw(start, stop)
        if self._checked:
            divisor, _ = intensity_divisor(block, f"{self._source} (frames {start}..{stop - 1})")
            if divisor > self._stored_range[1]:
                raise DataError(
                    f"{self._source}: frames {start}..{stop - 1} hold values up to 255 but frame 0 is in "
                    "[0, 1]; one scale per file"
                )
        return to_model_scale(block, self.meta.units, self._stored_range, self.meta.zr)

    def _raw(self, start: int, stop: int) -> np.ndarray:
        """Stored values of frames start..stop-1 as (T, C, H, W), only those read from disk."""
        index = []
        for axis in self._layout:
            if axis == "N":
                index.append(self._sequence)
            elif axis == "T":
                index.append(slice(self._offset + start, self._offset + stop))
            else:
                index.append(slice(None))
        try:
            block = np.asarray(self._array[tuple(index)])
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:  # h5py: damage of any kind
            detail = " ".join(str(exc).split())[:120]
            raise DataError(f"{self._source}: cannot read frames {start}..{stop - 1} ({detail})") from None
        kept = [axis for axis in self._layout if axis != "N"]
        if "T" not in kept:
            block, kept = block[None], ["T", *kept]
        if "C" not in kept:
            block, kept = block[None], ["C", *kept]
        return block.transpose([kept.index(axis) for axis in "TCHW"])


def _npy_member_memmap(path: Path, name: str) -> np.ndarray | None:
    """Memory-map an uncompressed .npy member of a .npz (None if it is compressed)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
        if local[:4] != b"PK\x03\x04":
            raise DataError(f"{path}: corrupt zip entry {name}")
        name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
        data_start = info.header_offset + 30 + name_len + extra_len
        handle.seek(data_start)
        shape, fortran, dtype = _read_npy_header(handle, f"{path} ({name})")
        offset = handle.tell()
    if dtype.hasobject:
        raise DataError(f"{path}: member {name} holds Python objects; refusing to unpickle")
    if offset + int(np.prod(shape)) * dtype.itemsize > path.stat().st_size:
        raise DataError(f"{path}: member {name} is truncated")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def open_npy(path: Path, **options) -> Sequence:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # a damaged header fails in many ways (ValueError, SyntaxError, TokenError)
        raise DataError(f"{path}: not a readable .npy array ({type(exc).__name__}: {exc})") from exc
    return LazyArraySequence(array, source=str(path), kind="npy", **options)


def open_npz(path: Path, *, key: str | None = None, **options) -> Sequence:
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if {"input_raw_data", "clips"} <= set(names) and key is None:
                return _predrnn_npz(path, archive, **options)
            key = key or _pick_member(path, archive)
            if key not in names:
                raise DataError(f"{path}: no array named {key!r}; it holds {', '.join(names)}")
            array = _npy_member_memmap(path, key + ".npy")
            if array is None:  # compressed: the member must be inflated whole
                array = archive[key]
    except DataError:
        raise
    except Exception as exc:  # damaged zip, header or deflate stream (BadZipFile, zlib.error, ...)
        raise DataError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})") from exc
    return LazyArraySequence(array, source=str(path), kind="npz", extra={"key": key}, **options)


def _read_npy_header(handle, source: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) from an open .npy stream, leaving it at the data."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(handle)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(handle)
    raise DataError(f"{source}: unsupported .npy format version {version}")


def _pick_member(path: Path, archive) -> str:
    """The array of frames in an .npz: the only one, else the first with 3+ dimensions."""
    names = list(archive.files)
    if len(names) == 1:
        return names[0]
    for name in names:
        with archive.zip.open(name + ".npy") as member:
            shape, _, _ = _read_npy_header(member, f"{path} ({name})")
        if len(shape) >= 3:
            return name
    raise DataError(f"{path}: none of its arrays ({', '.join(names)[:200]}) has the 3 or more axes of frames")


def _predrnn_npz(path: Path, archive, *, sequence: int = 0, **options) -> Sequence:
    """PredRNN's Moving MNIST .npz: frames (total, C, H, W) and clips (2, N, [start, length])."""
    clips = np.asarray(archive["clips"])
    if clips.ndim != 3 or clips.shape[0] != 2 or clips.shape[2] != 2:
        raise DataError(f"{path}: 'clips' has shape {clips.shape}, expected (2, N, 2)")
    if not -clips.shape[1] <= sequence < clips.shape[1]:
        raise DataError(f"{path}: sequence {sequence} does not exist; the file holds {clips.shape[1]}")
    (in_start, in_len), (out_start, out_len) = clips[0, sequence], clips[1, sequence]
    if out_start != in_start + in_len:
        raise DataError(f"{path}: sequence {sequence}'s output clip does not follow its input clip")
    frames = _npy_member_memmap(path, "input_raw_data.npy")
    if frames is None:
        frames = archive["input_raw_data"]
    return LazyArraySequence(
        frames,
        source=str(path),
        kind="npz",
        layout=options.pop("layout", None) or "TCHW",
        time_window=(int(in_start), int(in_len + out_len)),
        extra={"key": "input_raw_data", "clip": f"{sequence} of {clips.shape[1]}"},
        **options,
    )


def hdf5_datasets(handle) -> list[str]:
    """Paths of every dataset with 3 or more dimensions in an open HDF5 file."""
    import h5py

    found: list[str] = []
    handle.visititems(
        lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) and obj.ndim >= 3 else None
    )
    return found


def open_hdf5_array(path: Path, handle, *, dataset: str | None = None, **options) -> Sequence:
    """A dataset of frames in an open (non-ODIM) HDF5 file; the file stays open while in use."""
    import h5py

    candidates = hdf5_datasets(handle)
    if dataset is None:
        if not candidates:
            raise DataError(f"{path}: no dataset with 3 or more dimensions in this HDF5 file")
        dataset = candidates[0]
    node = handle.get(dataset)
    if not isinstance(node, h5py.Dataset):
        raise DataError(
            f"{path}: no dataset {dataset!r}; datasets of frames: {', '.join(candidates) or 'none'}"
        )
    extra = {"dataset": dataset}
    if len(candidates) > 1:
        extra["other_datasets"] = ", ".join(c for c in candidates if c != dataset)
    return LazyArraySequence(node, source=str(path), kind="hdf5", extra=extra, keep=handle, **options)
