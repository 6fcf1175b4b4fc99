"""Video files (mp4, avi, mov, mkv, webm, gif) through OpenCV's FFmpeg backend, read lazily.

The capture stays open; frames are decoded only when asked for. Reading on from where the
last read stopped costs nothing extra; any other start seeks first.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mimviewer.data.sequence import Sequence, SequenceMeta
from mimviewer.errors import DataError

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif")


class VideoSequence(Sequence):
    """RGB frames of a video file, scaled from 0..255 to [0, 1]."""

    def __init__(self, path: Path, channels: int | None = None):
        self._path = path
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise DataError(f"{path}: cannot open as a video (corrupt, truncated or unsupported codec)")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, first = capture.read()
        if not ok or first is None:
            capture.release()
            raise DataError(f"{path}: the video has no frame that can be decoded")
        if count <= 0:  # some containers do not say: count by demuxing once
            count = 1
            while capture.grab():
                count += 1
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            capture.read()
        self._capture, self._next = capture, 1
        fps = capture.get(cv2.CAP_PROP_FPS)
        size = (int(first.shape[0]), int(first.shape[1]))
        meta = SequenceMeta(
            source=str(path),
            kind="video",
            units="intensity",
            value_range=(0.0, 255.0),
            frame_size=size,
            original_size=size,
            channels=channels or 3,
            frame_interval_s=1.0 / fps if fps and fps > 0 else None,
            extra={"codec": _fourcc(capture), "fps": f"{fps:g}"},
        )
        super().__init__(count, meta, 3)

    def _read(self, start: int, stop: int) -> np.ndarray:
        if start != self._next:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, start)
        height, width = self.meta.frame_size
        out = np.empty((stop - start, 3, height, width), np.float32)
        for i in range(stop - start):
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                self._next = -1
                raise DataError(
                    f"{self._path}: frame {start + i} of {len(self)} cannot be decoded "
                    "(truncated or corrupt file?)"
                )
            if bgr.shape[:2] != (height, width):
                raise DataError(
                    f"{self._path}: frame {start + i} is {bgr.shape[1]}x{bgr.shape[0]}, not {width}x{height}"
                )
            out[i] = bgr[:, :, ::-1].transpose(2, 0, 1) / np.float32(255.0)
        self._next = stop
        return out

    def __del__(self):
        capture = getattr(self, "_capture", None)
        if capture is not None:
            capture.release()


def _fourcc(capture: cv2.VideoCapture) -> str:
    code = int(capture.get(cv2.CAP_PROP_FOURCC))
    text = "".join(chr((code >> (8 * k)) & 0xFF) for k in range(4))
    return text if text.isprintable() and text.strip() else "unknown"
