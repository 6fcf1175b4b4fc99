"""One radar scan at a time, for a folder that grows while it is read.

A live feed drops one file per scan: HKO-7 ``RADyymmddHHMMSS.png``, images with a time in
their name (``radar_20240601_1230.png``, ``202406011230.png``, ``...T123000...``) or ODIM-HDF5
files. Here: the time of a scan (from its name, else from ODIM metadata), whether a file is
complete (a writer may still be busy with it: PNG/JPEG must end with their end marker, and
every file must decode), and its frame in the model scale at a model's frame size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from mimviewer.data import units as radar_units
from mimviewer.data.images import IMAGE_SUFFIXES, channels_first
from mimviewer.data.odim import ODIM_SUFFIXES
from mimviewer.data.sequence import default_value_range, to_model_scale
from mimviewer.errors import DataError

SCAN_SUFFIXES: tuple[str, ...] = (*IMAGE_SUFFIXES, *ODIM_SUFFIXES)
_HKO = re.compile(r"^RAD(\d{12})$")
# yyyymmdd, an optional separator, HHMM and optional SS, not inside a longer number.
_STAMP = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})[T_\-]?(\d{2})(\d{2})(\d{2})?(?!\d)")
_PNG_END = b"IEND\xaeB`\x82"  # the last chunk of every complete PNG
_JPEG_END = b"\xff\xd9"
MAX_SCAN_BYTES = 512 * 2**20  # one scan larger than this is refused, not read into memory


def name_time(path: str | Path) -> datetime | None:
    """The time in a scan's file name (HKO-7 ``RADyymmddHHMMSS`` or ``yyyymmdd[_T-]HHMM[SS]``)."""
    stem = Path(path).stem
    match = _HKO.match(stem)
    try:
        if match:
            return datetime.strptime(match.group(1), "%y%m%d%H%M%S")
        match = _STAMP.search(stem)
        if match:
            y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups())
            return datetime(y, mo, d, h, mi, s)
    except ValueError:  # digits that only look like a time (month 13, ...)
        return None
    return None


def _odim_time(path: Path) -> datetime | None:
    """The first dataset's ``startdate``/``starttime``, else the file's ``/what`` ``date``/``time``."""
    from mimviewer.data.odim import open_hdf5

    def text(value) -> str:
        return value.decode("ascii", "replace") if isinstance(value, bytes | np.bytes_) else str(value)

    with open_hdf5(path) as handle:
        for group, date, clock in (("dataset1/what", "startdate", "starttime"), ("what", "date", "time")):
            attrs = handle[group].attrs if group in handle else {}
            if date in attrs and clock in attrs:
                try:
                    return datetime.strptime(text(attrs[date]) + text(attrs[clock])[:6], "%Y%m%d%H%M%S")
                except ValueError:
                    return None
    return None


def scan_time(path: str | Path) -> datetime | None:
    """When a scan was taken: from its name, else (ODIM) from ``/what`` date and time; None if unknown."""
    path = Path(path)
    found = name_time(path)
    if found is None and path.suffix.lower() in ODIM_SUFFIXES:
        found = _odim_time(path)
    return found


def is_scan_file(path: str | Path) -> bool:
    """A file a radar feed would drop (not a hidden or temporary file of a writer)."""
    path = Path(path)
    return path.suffix.lower() in SCAN_SUFFIXES and not path.name.startswith(".")


def looks_complete(path: str | Path) -> bool:
    """Whether a file ends as its format must (PNG's IEND chunk, JPEG's end marker); other
    formats pass here and are checked by decoding them (:func:`read_scan`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    end = {".png": _PNG_END, ".jpg": _JPEG_END, ".jpeg": _JPEG_END}.get(suffix)
    try:
        size = path.stat().st_size
        if size == 0:
            return False
        if end is None:
            return True
        with path.open("rb") as f:
            f.seek(max(0, size - 64))
            return end in f.read()
    except OSError:
        return False


@dataclass
class Scan:
    """One scan: its frame (C, H, W) in the model scale and when it was taken."""

    path: Path
    time: datetime | None
    frame: np.ndarray
    units: str
    notes: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        return f"{self.path.name}" + (f" ({self.time:%Y-%m-%d %H:%M:%S})" if self.time else "")


def _decode_image(path: Path) -> np.ndarray:
    """(C, H, W) in the stored dtype, RGB order, alpha dropped; DataError if it does not decode."""
    size = path.stat().st_size
    if size > MAX_SCAN_BYTES:
        raise DataError(f"{path}: {size} bytes, more than a scan can be ({MAX_SCAN_BYTES})")
    data = np.frombuffer(path.read_bytes(), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DataError(f"{path}: cannot decode the image (half-written, corrupt or not an image)")
    return channels_first(image)


def read_scan(
    path: str | Path,
    *,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
    units: str | None = None,
) -> Scan:
    """Read one scan; ``size`` (H, W) and ``channels`` fit it to a model the way sequences are fitted.

    Units: HKO-7 names mean reflectivity (``pixel * 70 / 255 - 10`` dBZ); ODIM files say what
    they hold; other images are intensity unless ``units`` says otherwise.
    """
    from mimviewer.data import fit_to, from_array
    from mimviewer.data.sequence import match_channels

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    notes: list[str] = []
    if path.suffix.lower() in ODIM_SUFFIXES:
        from mimviewer.data.odim import OdimSequence

        sequence = OdimSequence([path])
        frame, units = sequence.frames(0, 1)[0], sequence.meta.units
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        raw = _decode_image(path)
        hko = _HKO.match(path.stem) is not None
        units = units or ("dBZ" if hko else "intensity")
        if units == "dBZ" and not np.issubdtype(raw.dtype, np.integer):
            raise DataError(f"{path}: radar images must hold integer HKO-7 pixels, not {raw.dtype}")
        zr = (radar_units.MARSHALL_PALMER_A, radar_units.MARSHALL_PALMER_B)
        frame = to_model_scale(raw, units, default_value_range(raw.dtype), zr)
    else:
        raise DataError(f"{path}: not a scan file ({', '.join(SCAN_SUFFIXES)})")
    if channels is not None and frame.shape[0] != channels:
        frame = match_channels(frame[None], channels, str(path))[0]
        notes.append(f"channels -> {channels}")
    if size is not None and tuple(frame.shape[1:]) != tuple(size):
        fitted = fit_to(from_array(frame[None], units=units, source=str(path)), *size)
        notes.append(fitted.meta.transforms[-1])
        frame = fitted.frames()[0]
    return Scan(path, scan_time(path), np.asarray(frame, np.float32), units, tuple(notes))
