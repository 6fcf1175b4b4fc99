"""The frames an export shows: their shape contract, which are observed, the renderer to colour them.

Frames come in model scale [0, 1] as ``(T, C, H, W)``: ``gt`` holds the whole sequence
(``pre`` context frames, then the frames to predict) and every prediction holds the
predicted frames only, ``(T - pre, C, H, W)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mimviewer.errors import ShapeError
from mimviewer.export.writers import ExportError
from mimviewer.render import FrameRenderer


def _renderer(units: str, name: str | None) -> FrameRenderer:
    try:
        return FrameRenderer.for_units(units, name)
    except ValueError as exc:
        raise ExportError(str(exc)) from exc


def _check_frames(gt: np.ndarray, predictions: Mapping[str, np.ndarray], pre: int) -> None:
    if gt.ndim != 4:
        raise ShapeError(f"gt must be (T, C, H, W), got shape {gt.shape}")
    if not 0 <= pre < len(gt):
        raise ShapeError(f"pre must be in 0..{len(gt) - 1} for {len(gt)} frames, got {pre}")
    for name, pred in predictions.items():
        expected = (len(gt) - pre, *gt.shape[1:])
        if pred.shape != expected:
            raise ShapeError(
                f"prediction {name!r} must be the {len(gt) - pre} predicted frames {expected}, "
                f"got shape {pred.shape}"
            )


def observed_frames(gt: np.ndarray) -> np.ndarray:
    """(T,) bool: frames that have a truth (a NaN frame is one not observed yet)."""
    return ~np.isnan(np.asarray(gt)).all(axis=tuple(range(1, np.ndim(gt))))
