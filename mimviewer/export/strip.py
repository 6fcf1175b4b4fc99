"""The PNG strip: rows = GT and each prediction, columns = frames."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mimviewer.export.drawing import (
    BACKGROUND,
    BORDER,
    COLOURBAR_SPACE,
    CONTEXT_COLOUR,
    LABEL,
    MARGIN,
    PREDICTED_COLOUR,
    _draw_absent,
    _draw_scale,
    _enlarge,
    _fit,
    _text,
    _text_width,
)
from mimviewer.export.frames import _check_frames, _renderer, observed_frames
from mimviewer.export.writers import ExportError, write_png
from mimviewer.render import FrameRenderer


def render_strip(
    gt: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    pre: int,
    units: str = "intensity",
    every: int = 1,
    colour_scale: str | None = None,
    renderer: FrameRenderer | None = None,
) -> np.ndarray:
    """One RGB image: rows = GT and each prediction, columns = frames (every ``every``-th).

    Column borders mark context (blue) and predicted (orange) frames; predictions have no
    cells under the context columns; a NaN ``gt`` frame (not observed yet) is a hatched cell.
    """
    gt = np.asarray(gt, dtype=np.float32)
    predictions = {name: np.asarray(p, dtype=np.float32) for name, p in predictions.items()}
    _check_frames(gt, predictions, pre)
    renderer = renderer or _renderer(units, colour_scale)
    rows = [("ground truth", renderer.frames(gt), 0)]
    rows += [(name, renderer.frames(p), pre) for name, p in predictions.items()]
    columns = list(range(0, len(gt), max(1, every)))
    seen = observed_frames(gt)
    h, w = gt.shape[-2:]
    zoom = max(1, math.ceil(64 / max(h, w)))
    cell_h, cell_w = h * zoom + 2 * BORDER, w * zoom + 2 * BORDER
    label_w = max(_text_width(name) for name, _, _ in rows) + 2 * MARGIN
    width = label_w + len(columns) * (cell_w + 2) + COLOURBAR_SPACE + MARGIN
    height = LABEL + len(rows) * (cell_h + 2) + MARGIN
    image = np.empty((max(height, 80), width, 3), np.uint8)
    image[:] = BACKGROUND
    for c, t in enumerate(columns):
        x = label_w + c * (cell_w + 2)
        colour = PREDICTED_COLOUR if t >= pre else CONTEXT_COLOUR
        _text(image, _fit(str(t), cell_w), x, LABEL - 5, colour)
        for r, (_, frames, first) in enumerate(rows):
            if t < first:
                continue
            y = LABEL + r * (cell_h + 2)
            image[y : y + cell_h, x : x + cell_w] = colour
            if r == 0 and not seen[t]:
                inner = (cell_h - 2 * BORDER, cell_w - 2 * BORDER)
                _draw_absent(image, y + BORDER, x + BORDER, *inner, "not observed")
                continue
            panel = _enlarge(frames[t - first], zoom)
            image[y + BORDER : y + cell_h - BORDER, x + BORDER : x + cell_w - BORDER] = panel
    for r, (name, _, _) in enumerate(rows):
        _text(image, name, MARGIN, LABEL + r * (cell_h + 2) + cell_h // 2 + 4)
    bar_height = max(20, len(rows) * (cell_h + 2) - 2 - LABEL)
    _draw_scale(image, width - COLOURBAR_SPACE, 2 * LABEL, bar_height, renderer.frame_bar(), renderer.lut)
    return image


def write_strip(
    path: str | Path,
    gt: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    pre: int,
    units: str = "intensity",
    every: int = 1,
    colour_scale: str | None = None,
    renderer: FrameRenderer | None = None,
    inputs=(),
) -> Path:
    """Write :func:`render_strip` as a PNG."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ExportError(f"{path}: strips are written as .png")
    image = render_strip(
        gt, predictions, pre=pre, units=units, every=every, colour_scale=colour_scale, renderer=renderer
    )
    return write_png(path, image, inputs=inputs)
