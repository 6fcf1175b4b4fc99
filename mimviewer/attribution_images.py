"""Pictures of an attribution: context frames with the attribution over them, a per-frame bar
chart and the memory-path x step plot (PNG), or the same scrubbed frame by frame (GIF).

Drawn with numpy and OpenCV like every export (:mod:`mimviewer.export`), so the command
line and the window show the same colours: frames in the data's colour scale, attribution
on the diverging blue-white-red scale symmetric about zero (one range for all frames, so
frames compare), memory paths on viridis.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from mimviewer.attribution import Attribution, MemoryPaths
from mimviewer.export import ExportError, write_png, write_video
from mimviewer.export.drawing import (
    BACKGROUND,
    BORDER,
    CONTEXT_COLOUR,
    MARGIN,
    PREDICTED_COLOUR,
    _draw_scale,
    _enlarge,
    _fit,
    _text,
)
from mimviewer.export.frames import _renderer
from mimviewer.render import DIVERGING, ColourScale, FrameRenderer, value_scale

REGION_COLOUR = (255, 255, 0)
NOT_COMPUTED = (48, 48, 48)  # a memory-path cell of a state that step does not compute
BAR_HEIGHT = 70  # px of the per-frame bar chart
ROW_LABEL = 86  # px left of each row for its name


def attribution_scale(attribution: Attribution) -> ColourScale:
    """Symmetric diverging scale over every frame's attribution (a robust 99.5th percentile of |a|)."""
    values = np.abs(attribution.maps.sum(1))  # (pre, H, W): channels summed, as shown
    largest = float(np.percentile(values, 99.5)) if values.size else 0.0
    largest = largest or float(values.max(initial=0.0)) or 1e-12
    return value_scale("diverging", -largest, largest, f"attribution ({attribution.method})")


def overlay(
    frame_rgb: np.ndarray, values: np.ndarray, scale: ColourScale, strength: float = 0.85
) -> np.ndarray:
    """``frame_rgb`` (H, W, 3) with ``values`` (H, W) blended in: opacity grows with |value|."""
    alpha = np.clip(np.abs(values) / scale.vmax, 0.0, 1.0)[..., None] * strength
    return np.rint(frame_rgb * (1 - alpha) + scale.to_rgb(values) * alpha).astype(np.uint8)


def draw_bar(image: np.ndarray, x: int, y: int, height: int, scale: ColourScale | FrameRenderer) -> None:
    """A labelled colour bar of a value scale, or of a renderer's frames."""
    if isinstance(scale, FrameRenderer):
        _draw_scale(image, x, y, height, scale.frame_bar(), scale.lut)
    else:
        _draw_scale(image, x, y, height, scale.colour_bar(), scale.colours)


def region_outline(rgb: np.ndarray, mask: np.ndarray, zoom: int) -> np.ndarray:
    """``rgb`` (already enlarged by ``zoom``) with the border of ``mask`` drawn in yellow."""
    big = _enlarge(mask[..., None].astype(np.uint8), zoom)[..., 0]
    edge = big & ~cv2.erode(big, np.ones((3, 3), np.uint8)).astype(bool)
    out = rgb.copy()
    out[edge.astype(bool)] = REGION_COLOUR
    return out


def _bars(
    width: int, height: int, totals: np.ndarray, columns: list[int], cell: int, highlight: int | None
) -> np.ndarray:
    """A signed bar per context frame, centred on a zero line, bars under their columns."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    mid = (height - 14) // 2  # zero line; the bottom 14 px hold the labels
    image[mid, :] = (90, 90, 90)
    largest = float(np.max(np.abs(totals))) or 1.0
    for t, x in enumerate(columns):
        size = round(abs(totals[t]) / largest * (mid - 4))
        colour = DIVERGING[230] if totals[t] >= 0 else DIVERGING[25]
        if highlight is not None and t != highlight:
            colour = tuple(int(c * 0.45) for c in colour)
        x0, x1 = x + cell // 4, x + 3 * cell // 4
        if totals[t] >= 0:
            image[mid - size : mid, x0:x1] = colour
        else:
            image[mid + 1 : mid + 1 + size, x0:x1] = colour
        _text(image, f"{totals[t]:.2g}", x + 2, height - 3, scale=0.33)
    return image


def memory_plot(memory: MemoryPaths, pre: int, cell: int = 14, shares: bool = True) -> np.ndarray:
    """Rows = (layer, memory path), columns = steps; the share (or norm) of the gradient as viridis."""
    labels, matrix = memory.row_matrix(shares=shares)
    steps = matrix.shape[1] if matrix.size else memory.norms.shape[0]
    label_w = 92
    top = 30
    height = top + max(1, len(labels)) * cell + 20
    width = label_w + steps * cell + 120
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    what = "share of the gradient" if shares else "gradient norm"
    _text(image, f"memory path x step: {what} reaching the region", MARGIN, 14)
    vmax = float(np.nanmax(matrix)) if np.isfinite(matrix).any() else 1.0
    scale = value_scale("viridis", 0.0, vmax or 1.0, "share" if shares else "|grad|")
    for r, label in enumerate(labels):
        y = top + r * cell
        _text(image, label, MARGIN, y + cell - 3, scale=0.35)
        tiles = scale.to_rgb(matrix[r])  # (steps, 3)
        for t in range(steps):
            x = label_w + t * cell
            # NaN: the step does not compute this state (after frame K, MIM-N at step 0, ...)
            colour = NOT_COMPUTED if np.isnan(matrix[r, t]) else tiles[t]
            image[y : y + cell - 1, x : x + cell - 1] = colour
    for t in range(0, steps, max(1, math.ceil(steps / 10))):
        colour = PREDICTED_COLOUR if t + 1 >= pre else CONTEXT_COLOUR
        _text(image, str(t), label_w + t * cell, height - 6, colour, scale=0.33)
    _text(image, "step", label_w + steps * cell + 4, height - 6, scale=0.33)
    if labels:
        draw_bar(image, label_w + steps * cell + 12, top + 14, max(20, len(labels) * cell - 14), scale)
    return image


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    width = max(p.shape[1] for p in parts)
    padded = []
    for p in parts:
        row = np.empty((p.shape[0], width, 3), np.uint8)
        row[:] = BACKGROUND
        row[:, : p.shape[1]] = p
        padded.append(row)
    return np.concatenate(padded, 0)


def render_attribution(
    attribution: Attribution,
    context: np.ndarray,
    predicted: np.ndarray,
    *,
    units: str = "intensity",
    title: str = "",
    renderer: FrameRenderer | None = None,
) -> np.ndarray:
    """One RGB image: context frames with the attribution overlaid, the attribution alone, the
    explained frame with its region, the per-frame totals and the memory-path plot.

    ``context`` (pre, C, H, W) and ``predicted`` (C, H, W), the explained frame, in model scale.
    """
    renderer = renderer or _renderer(units, None)
    scale = attribution_scale(attribution)
    pre, _, h, w = context.shape
    zoom = max(1, math.ceil(96 / max(h, w)))
    cell = w * zoom + 2 * BORDER
    columns = [ROW_LABEL + t * (cell + 2) for t in range(pre)]
    target_x = columns[-1] + cell + 3 * MARGIN
    width = target_x + cell + 2 * MARGIN + 2 * 104
    header = 40
    rows_h = 2 * (h * zoom + 2 * BORDER + 18)
    image = np.empty((header + rows_h, width, 3), np.uint8)
    image[:] = BACKGROUND
    head = title or attribution.describe()
    _text(image, _fit(head, width - 2 * MARGIN), MARGIN, 16, scale=0.5)
    gap = attribution.completeness_gap
    line = f"region sum {attribution.target:.4g}"
    if gap is not None:
        line += f"; baseline {attribution.baseline_target:.4g}; completeness gap {gap:.3g}"
    _text(image, line, MARGIN, 33, scale=0.4)
    rgb = renderer.frames(context)  # (pre, H, W, 3)
    shown = attribution.maps.sum(1)  # (pre, H, W)
    for r, name in enumerate(("overlay", "attribution")):
        y = header + r * (h * zoom + 2 * BORDER + 18) + 16
        _text(image, name, MARGIN, y + cell // 2)
        for t, x in enumerate(columns):
            if r == 0:
                _text(image, f"{t}", x + 2, y - 3, CONTEXT_COLOUR, scale=0.35)
                panel = overlay(rgb[t], shown[t], scale)
            else:
                panel = scale.to_rgb(shown[t])
            image[y : y + cell, x : x + cell] = CONTEXT_COLOUR
            image[y + BORDER : y + cell - BORDER, x + BORDER : x + cell - BORDER] = _enlarge(panel, zoom)
    y = header + 16
    _text(image, f"frame {attribution.frame}", target_x, y - 3, PREDICTED_COLOUR, scale=0.35)
    target = region_outline(_enlarge(renderer.frames(predicted), zoom), attribution.mask, zoom)
    image[y : y + cell, target_x : target_x + cell] = PREDICTED_COLOUR
    image[y + BORDER : y + cell - BORDER, target_x + BORDER : target_x + cell - BORDER] = target
    draw_bar(image, target_x + cell + 2 * MARGIN, y + 12, h * zoom, renderer)
    draw_bar(image, target_x + cell + 2 * MARGIN + 104, y + 12, h * zoom, scale)
    bars = _bars(width, BAR_HEIGHT, attribution.frame_totals, columns, cell, None)
    _text(bars, "per frame", MARGIN, 12)
    parts = [image, bars]
    if attribution.memory is not None:
        parts.append(memory_plot(attribution.memory, pre))
    return _stack(parts)


def render_attribution_frames(
    attribution: Attribution,
    context: np.ndarray,
    predicted: np.ndarray,
    *,
    units: str = "intensity",
    renderer: FrameRenderer | None = None,
) -> Iterator[np.ndarray]:
    """One image per context frame: overlay | attribution | explained frame, totals bar highlighted."""
    renderer = renderer or _renderer(units, None)
    scale = attribution_scale(attribution)
    pre, _, h, w = context.shape
    zoom = max(1, math.ceil(160 / max(h, w)))
    cell = w * zoom + 2 * BORDER
    xs = [MARGIN + i * (cell + MARGIN) for i in range(3)]
    width = xs[-1] + cell + MARGIN + 2 * 104
    header = 40
    rgb = renderer.frames(context)
    shown = attribution.maps.sum(1)
    target = region_outline(_enlarge(renderer.frames(predicted), zoom), attribution.mask, zoom)
    small = max(12, (width - 2 * MARGIN) // pre - 2)
    columns = [MARGIN + t * (small + 2) for t in range(pre)]
    for t in range(pre):
        image = np.empty((header + cell + 24, width, 3), np.uint8)
        image[:] = BACKGROUND
        _text(image, _fit(attribution.describe(), width - 2 * MARGIN), MARGIN, 16, scale=0.45)
        _text(
            image,
            f"context frame {t}/{pre - 1}: total {attribution.frame_totals[t]:.3g}",
            MARGIN,
            33,
            CONTEXT_COLOUR,
        )
        y = header + 18
        for x, name, panel, colour in (
            (
                xs[0],
                f"frame {t} + attribution",
                _enlarge(overlay(rgb[t], shown[t], scale), zoom),
                CONTEXT_COLOUR,
            ),
            (xs[1], "attribution", _enlarge(scale.to_rgb(shown[t]), zoom), CONTEXT_COLOUR),
            (xs[2], f"frame {attribution.frame} (explained)", target, PREDICTED_COLOUR),
        ):
            _text(image, _fit(name, cell), x, y - 5)
            image[y : y + cell, x : x + cell] = colour
            image[y + BORDER : y + cell - BORDER, x + BORDER : x + cell - BORDER] = panel
        draw_bar(image, xs[-1] + cell + MARGIN, y + 12, h * zoom - 12, renderer)
        draw_bar(image, xs[-1] + cell + MARGIN + 104, y + 12, h * zoom - 12, scale)
        bars = _bars(width, BAR_HEIGHT, attribution.frame_totals, columns, small, t)
        yield _stack([image, bars])


def write_attribution_image(
    path: str | Path,
    attribution: Attribution,
    context: np.ndarray,
    predicted: np.ndarray,
    *,
    units: str = "intensity",
    fps: float = 2,
    renderer: FrameRenderer | None = None,
) -> Path:
    """``.png``: :func:`render_attribution`; ``.gif``: :func:`render_attribution_frames`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        return write_png(
            path, render_attribution(attribution, context, predicted, units=units, renderer=renderer)
        )
    if suffix != ".gif":
        raise ExportError(f"{path}: attribution pictures are .png or .gif (or .npz for the numbers)")
    frames = render_attribution_frames(attribution, context, predicted, units=units, renderer=renderer)
    return write_video(path, frames, fps=fps)
