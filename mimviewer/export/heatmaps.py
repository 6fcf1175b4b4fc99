"""The internals heatmap grid of one step: rows = layers, columns = quantities."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mimviewer.errors import ShapeError
from mimviewer.export.drawing import (
    BACKGROUND,
    CONTEXT_COLOUR,
    HEADER,
    LABEL,
    MARGIN,
    PREDICTED_COLOUR,
    _fit,
    _text,
)
from mimviewer.render import ColourScale, value_scale
from mimviewer.trace import Trace


def _as_image(values: np.ndarray) -> np.ndarray:
    """A map (H', W') stays; a unit vector (U,) or (1, U) of the 1-D family becomes a row."""
    values = np.asarray(values, dtype=np.float32)
    return values[None] if values.ndim == 1 else values.reshape(-1, values.shape[-1])


def heatmap_scale(trace: Trace, layer: int, name: str, reduction: str, sample: int = 0) -> ColourScale:
    """Colour scale of one heatmap, fixed over all steps so it does not flicker while scrubbing.

    Fractions and values inside [0, 1] (gates) use viridis over [0, 1]; signed values
    (memories, candidates, dH) use blue-white-red, symmetric about zero.
    """
    maps = trace.map(layer, name, reduction)[:, sample]
    low, high = float(np.nanmin(maps)), float(np.nanmax(maps))
    if reduction in ("low", "high", "saturated") or (low >= 0.0 and high <= 1.0):
        return value_scale("viridis", 0.0, 1.0, name, bad=BACKGROUND)
    largest = max(abs(low), abs(high)) or 1e-6
    return value_scale("diverging", -largest, largest, name, bad=BACKGROUND)


def render_heatmap_grid(
    trace: Trace,
    step: int,
    quantities: Sequence[str],
    reduction: str = "mean",
    *,
    sample: int = 0,
    cell: int = 96,
) -> np.ndarray:
    """The internals grid of one step as RGB uint8: rows = layers, columns = quantities.

    ``reduction``: "mean" (over channels), "low"/"high"/"saturated" (fraction of saturated
    channels), or "channel" (the probe's chosen channel). A quantity a layer does not have
    is an empty cell. Under each cell: its colour range.
    """
    if not 0 <= step < trace.steps:
        raise ShapeError(f"step must be in 0..{trace.steps - 1}, got {step}")
    layers = trace.num_layers
    label_w = 34
    row_h = cell + 2 * LABEL
    width = label_w + len(quantities) * (cell + MARGIN) + MARGIN
    height = HEADER + LABEL + layers * row_h
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    phase = "predicted" if step + 1 >= trace.pre else "context"
    colour = PREDICTED_COLOUR if phase == "predicted" else CONTEXT_COLOUR
    title = f"step {step}/{trace.steps - 1}: reads frame {step}, predicts {step + 1} ({phase}); {reduction}"
    _text(image, _fit(title, width - 2 * MARGIN), MARGIN, 16, colour)
    for q, name in enumerate(quantities):
        _text(image, _fit(name, cell), label_w + q * (cell + MARGIN), HEADER + LABEL - 5)
    for layer in range(layers):
        y = HEADER + LABEL + layer * row_h
        _text(image, f"L{layer}", MARGIN, y + cell // 2 + 4)
        for q, name in enumerate(quantities):
            x = label_w + q * (cell + MARGIN)
            if not trace.has(layer, name):
                image[y : y + cell, x : x + cell] = (48, 48, 48)
                continue
            if not trace.valid_steps(layer, name)[step]:  # MIM-N at step 0, E3D's resting steps
                image[y : y + cell, x : x + cell] = (220, 220, 220)
                _text(image, _fit("not computed", cell), x + 2, y + cell // 2 + 4, (40, 40, 40), 0.35)
                continue
            scale = heatmap_scale(trace, layer, name, reduction, sample)
            values = _as_image(trace.map(layer, name, reduction)[step, sample])
            h, w = values.shape
            fit = min(cell / h, cell / w)
            size = (max(1, round(w * fit)), max(cell // 6 if h == 1 else 1, round(h * fit)))
            tile = cv2.resize(scale.to_rgb(values), size, interpolation=cv2.INTER_NEAREST)
            oy, ox = y + (cell - tile.shape[0]) // 2, x + (cell - tile.shape[1]) // 2
            image[oy : oy + tile.shape[0], ox : ox + tile.shape[1]] = tile
            symmetric = scale.vmin == -scale.vmax
            span = f"+-{scale.vmax:.2g}" if symmetric else f"{scale.vmin:g} to {scale.vmax:g}"
            _text(image, _fit(span, cell), x, y + cell + 13, scale=0.35)
    return image
