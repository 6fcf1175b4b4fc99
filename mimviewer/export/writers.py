"""Image and animation files: PNG, GIF and MP4, written atomically and read back before they replace a file.

Every writer goes through :mod:`mimviewer.atomic`, so a failed export never leaves a
half-written file where the user's old one was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np

from mimviewer.atomic import OutputError, PathLike, atomic_path, write_bytes
from mimviewer.export.drawing import _pad_to

VIDEO_SUFFIXES = (".gif", ".mp4")


class ExportError(OutputError):
    """An export that cannot be written (unknown file type, failed writer)."""


def write_video(
    path: PathLike, images: Iterable[np.ndarray], *, fps: float = 4, loop: bool = True, inputs=()
) -> Path:
    """RGB uint8 images as an animated GIF or an MP4 (H.264), chosen by suffix, written atomically.

    The written file is read back before it replaces the target: a writer that failed
    silently (ffmpeg on a full disk) leaves the old file in place and raises one line.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ExportError(f"{path}: animations are .gif or .mp4, not {suffix or 'no suffix'!r}")
    if not (math.isfinite(fps) and 0.01 <= fps <= 1000):
        raise ExportError(f"{path}: fps must be between 0.01 and 1000, got {fps}")
    with atomic_path(path, inputs) as tmp:
        if suffix == ".gif":
            writer = imageio.get_writer(tmp, mode="I", duration=1000.0 / fps, loop=0 if loop else 1)
        else:
            writer = imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=16)
        count = 0
        with writer:
            for image in images:  # drawn here: a drawing error is not the writer's
                try:
                    writer.append_data(_pad_to(image, 16) if suffix == ".mp4" else image)
                except (OSError, RuntimeError, ValueError) as exc:
                    raise ExportError(
                        f"{path}: the {suffix[1:].upper()} writer failed ({_first_line(exc)})"
                    ) from exc
                count += 1
        _check_video(path, tmp, count)
    return path


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _check_video(path: Path, tmp: Path, expected: int) -> None:
    """Read the written file back: it must decode to ``expected`` frames."""
    try:
        with imageio.get_reader(tmp) as reader:
            count = sum(1 for _ in reader)
    except Exception as exc:  # any decoder error means the file is not a usable video
        raise ExportError(
            f"{path}: the written file does not decode ({_first_line(exc)}); not kept"
        ) from None
    if count < expected:
        raise ExportError(f"{path}: the writer stored {count} of {expected} frames; not kept")


def write_png(path: str | Path, image: np.ndarray, inputs=()) -> Path:
    """Write an RGB uint8 image as PNG, atomically."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ExportError(f"{path}: could not encode the image as PNG")
    return write_bytes(path, encoded.tobytes(), inputs)
