"""Folders of images (png, jpg, tif, bmp) in natural order: frame2 comes before frame10.

HKO-7 radar folders are images too: their file names (``RADyymmddHHMMSS.png``) give them
away, their pixels are reflectivity (``pixel * 70 / 255 - 10`` dBZ) and the names give the
time between frames.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from mimviewer.access import os_error
from mimviewer.data.sequence import (
    Sequence,
    SequenceMeta,
    default_value_range,
    physical_range,
    to_model_scale,
)
from mimviewer.errors import DataError

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_HKO_NAME = re.compile(r"^RAD(\d{12})$")


def natural_key(path: Path) -> list:
    """Sort key that orders embedded numbers by value: frame2 < frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def image_files(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, in natural order."""
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=natural_key
    )


def _read_image(path: Path) -> np.ndarray:
    """(C, H, W) in the stored dtype, RGB order; alpha dropped."""
    try:
        path.open("rb").close()  # OpenCV says only "cannot read" for a file this user may not read
    except OSError as exc:
        raise os_error(path, exc, DataError) from None
    try:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise DataError(f"{path}: cannot decode the image ({exc.msg.strip()})") from exc
    if image is None:
        raise DataError(f"{path}: cannot decode the image (corrupt, truncated or not an image)")
    return channels_first(image)


def channels_first(image: np.ndarray) -> np.ndarray:
    """OpenCV's decoded (H, W) or (H, W, C) BGR[A] -> (C, H, W) in RGB order, alpha dropped."""
    if image.ndim == 2:
        return image[None]
    image = image[:, :, :3][:, :, ::-1] if image.shape[2] >= 3 else image
    return image.transpose(2, 0, 1)


def _hko_interval_s(files: list[Path]) -> float | None:
    """Median time between HKO-7 frames from their ``RADyymmddHHMMSS`` names."""
    stamps = []
    for path in files:
        match = _HKO_NAME.match(path.stem)
        if match is None:
            return None
        try:
            stamps.append(datetime.strptime(match.group(1), "%y%m%d%H%M%S"))
        except ValueError as exc:
            raise DataError(f"{path}: not a valid HKO-7 time stamp RADyymmddHHMMSS ({exc})") from exc
    if len(stamps) < 2:
        return None
    return float(np.median(np.diff([s.timestamp() for s in stamps])))


class ImageFolderSequence(Sequence):
    """One image per frame, all of the same size and channel count."""

    def __init__(
        self,
        folder: Path,
        *,
        units: str | None = None,
        channels: int | None = None,
        value_range: tuple[float, float] | None = None,
        frame_interval_s: float | None = None,
    ):
        files = image_files(folder)
        if not files:
            raise DataError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        first = _read_image(files[0])
        hko = all(_HKO_NAME.match(p.stem) for p in files)
        units = units or ("dBZ" if hko else "intensity")
        stored_range = value_range or default_value_range(first.dtype)
        if units == "dBZ" and not np.issubdtype(first.dtype, np.integer):
            raise DataError(f"{files[0]}: radar images must hold integer HKO-7 pixels, not {first.dtype}")
        self._files, self._dtype, self._stored_range = files, first.dtype, stored_range
        size = (int(first.shape[1]), int(first.shape[2]))
        transforms = ("HKO-7 pixels: dBZ = pixel * 70 / 255 - 10",) if units == "dBZ" else ()
        meta = SequenceMeta(
            source=str(folder),
            kind="images",
            units=units,
            value_range=physical_range(units, stored_range),
            frame_size=size,
            original_size=size,
            channels=channels or int(first.shape[0]),
            frame_interval_s=frame_interval_s or (_hko_interval_s(files) if hko else None),
            transforms=transforms,
            extra={"first_file": files[0].name, "dtype": str(first.dtype)},
        )
        super().__init__(len(files), meta, int(first.shape[0]))

    def _read(self, start: int, stop: int) -> np.ndarray:
        out = []
        for path in self._files[start:stop]:
            image = _read_image(path)
            if image.shape[1:] != self.meta.original_size or image.shape[0] != self._stored_channels:
                raise DataError(
                    f"{path}: image is {image.shape[2]}x{image.shape[1]} with {image.shape[0]} channels, "
                    f"unlike the first ({self._files[0].name})"
                )
            out.append(to_model_scale(image, self.meta.units, self._stored_range, self.meta.zr))
        return np.stack(out)
