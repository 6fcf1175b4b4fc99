"""ODIM-HDF5 radar composites (OPERA / EUMETNET): one file per time, or many datasets in one.

Layout read (ODIM_H5 v2.x): ``/datasetN/dataM/data`` holds raw integers; ``what`` groups
give ``quantity`` (DBZH, RATE, ...), ``gain``, ``offset``, ``nodata`` (outside coverage) and
``undetect`` (measured, no echo), looked up in ``datasetN/dataM/what``, then
``datasetN/what``, then ``/what`` (ODIM's inheritance). Physical value = raw * gain + offset;
``nodata`` and ``undetect`` become "no echo" (model scale 0). Times come from
``startdate``/``starttime`` (or ``/what`` ``date``/``time``).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import numpy as np

from mimviewer.data.sequence import Sequence, SequenceMeta, physical_range, to_model_scale
from mimviewer.errors import DataError

ODIM_SUFFIXES: tuple[str, ...] = (".h5", ".hdf5", ".hdf", ".he5")
REFLECTIVITY: tuple[str, ...] = ("DBZH", "DBZV", "TH", "TV", "DBZ")
RAIN_RATE: tuple[str, ...] = ("RATE",)


# What h5py raises for a damaged file, depending on which structure the damage hits.
H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError)


def hdf5_damage(path: Path | str, exc: BaseException) -> DataError:
    """One line naming the file for an h5py failure (permission denied said as such)."""
    if isinstance(exc, PermissionError):
        return DataError(f"{path}: permission denied (the file cannot be read by this user)")
    detail = " ".join(str(exc).split())[:120]
    return DataError(f"{path}: corrupt or unreadable HDF5 file ({detail or type(exc).__name__})")


def open_hdf5(path: Path):
    """An h5py file opened read-only; a corrupt or truncated file is a DataError naming it."""
    import h5py

    try:
        return h5py.File(path, "r")
    except H5_ERRORS as exc:
        raise hdf5_damage(path, exc) from None


def _text(value) -> str:
    if isinstance(value, bytes | np.bytes_):
        return value.decode("ascii", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return _text(value.item())
    return str(value)


def is_odim(handle) -> bool:
    """An ODIM file says so in ``Conventions``, or at least has ``dataset1/data1/data``."""
    if _text(handle.attrs.get("Conventions", "")).startswith("ODIM_H5"):
        return True
    return "dataset1/data1/data" in handle


def _numbered(group, prefix: str) -> list[str]:
    """Child names ``prefix1``, ``prefix2``, ... in numeric order."""
    pattern = re.compile(rf"^{prefix}(\d+)$")
    return sorted((n for n in group if pattern.match(n)), key=lambda n: int(pattern.match(n).group(1)))


def _what(handle, dataset: str, data: str, name: str):
    """An ODIM ``what`` attribute, inherited from the dataset and the file root."""
    for group in (f"{dataset}/{data}/what", f"{dataset}/what", "what"):
        if group in handle and name in handle[group].attrs:
            return handle[group].attrs[name]
    return None


def _timestamp(handle, dataset: str, data: str) -> float | None:
    date = _what(handle, dataset, data, "startdate") or _what(handle, dataset, data, "date")
    time = _what(handle, dataset, data, "starttime") or _what(handle, dataset, data, "time")
    if date is None or time is None:
        return None
    try:
        return datetime.strptime(_text(date) + _text(time)[:6], "%Y%m%d%H%M%S").timestamp()
    except ValueError:
        return None


class _Frame:
    """Where one frame lives and how to decode it."""

    def __init__(self, path: Path, handle, dataset: str, data: str):
        self.path, self.node = path, f"{dataset}/{data}/data"
        gain, offset = _what(handle, dataset, data, "gain"), _what(handle, dataset, data, "offset")
        self.gain = float(gain) if gain is not None else 1.0
        self.offset = float(offset) if offset is not None else 0.0
        nodata, undetect = _what(handle, dataset, data, "nodata"), _what(handle, dataset, data, "undetect")
        self.nodata = None if nodata is None else float(nodata)
        self.undetect = None if undetect is None else float(undetect)
        self.time = _timestamp(handle, dataset, data)
        self.shape = tuple(handle[self.node].shape)


class OdimSequence(Sequence):
    """The frames of one quantity across ODIM files (sorted by time when the times are known)."""

    def __init__(
        self,
        files: list[Path],
        *,
        quantity: str | None = None,
        channels: int | None = None,
        frame_interval_s: float | None = None,
        source: str | None = None,
    ):
        source = source or str(files[0])
        by_quantity: dict[str, list[_Frame]] = {}
        for path in files:
            with open_hdf5(path) as handle:
                if not is_odim(handle):
                    raise DataError(f"{path}: an HDF5 file but not ODIM (no dataset1/data1/data)")
                try:
                    for dataset in _numbered(handle, "dataset"):
                        for data in _numbered(handle[dataset], "data"):
                            if "data" not in handle[dataset][data]:
                                continue
                            name = _text(_what(handle, dataset, data, "quantity") or "UNKNOWN").upper()
                            by_quantity.setdefault(name, []).append(_Frame(path, handle, dataset, data))
                except H5_ERRORS as exc:
                    raise hdf5_damage(path, exc) from None
        if not by_quantity:
            raise DataError(f"{source}: no datasetN/dataM/data in the ODIM file(s)")
        if quantity is None:
            preferred = [q for q in (*REFLECTIVITY, *RAIN_RATE) if q in by_quantity]
            if not preferred:
                raise DataError(
                    f"{source}: no reflectivity or rain rate; quantities: {', '.join(by_quantity)}"
                )
            quantity = preferred[0]
        quantity = quantity.upper()
        if quantity not in by_quantity:
            raise DataError(f"{source}: no quantity {quantity!r}; the file(s) hold {', '.join(by_quantity)}")
        if quantity in REFLECTIVITY:
            units = "dBZ"
        elif quantity in RAIN_RATE:
            units = "mm/h"
        else:
            raise DataError(f"{source}: quantity {quantity} is neither reflectivity nor rain rate")
        frames = by_quantity[quantity]
        if all(f.time is not None for f in frames):
            frames.sort(key=lambda f: f.time)
            if frame_interval_s is None and len(frames) > 1:
                frame_interval_s = float(np.median(np.diff([f.time for f in frames])))
        shapes = {f.shape for f in frames}
        if len(shapes) != 1 or len(frames[0].shape) != 2:
            raise DataError(
                f"{source}: {quantity} frames must all be 2-D of one size; found {sorted(shapes)}"
            )
        self._frames = frames
        self._handles: dict[Path, object] = {}
        size = (int(frames[0].shape[0]), int(frames[0].shape[1]))
        meta = SequenceMeta(
            source=source,
            kind="odim",
            units=units,
            value_range=physical_range(units),
            frame_size=size,
            original_size=size,
            channels=channels or 1,
            frame_interval_s=frame_interval_s,
            transforms=(f"{quantity} = raw * gain + offset; nodata and undetect shown as no echo",),
            extra={"quantity": quantity, "files": str(len(files))},
        )
        super().__init__(len(frames), meta, 1)

    def _handle(self, path: Path):
        if path not in self._handles:
            for old in self._handles.values():  # keep one file open at a time
                old.close()
            self._handles = {path: open_hdf5(path)}
        return self._handles[path]

    def _read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, 1, *self.meta.frame_size), np.float32)
        for i, frame in enumerate(self._frames[start:stop]):
            try:
                raw = np.asarray(self._handle(frame.path)[frame.node][()])
            except H5_ERRORS as exc:
                raise hdf5_damage(frame.path, exc) from None
            values = raw.astype(np.float32) * np.float32(frame.gain) + np.float32(frame.offset)
            for flag in (frame.nodata, frame.undetect):
                if flag is not None:
                    values[raw == flag] = np.nan  # no echo: model scale 0
            out[i, 0] = to_model_scale(values, self.meta.units, (0.0, 1.0), self.meta.zr)
        return out

    def __del__(self):
        for handle in getattr(self, "_handles", {}).values():
            handle.close()
