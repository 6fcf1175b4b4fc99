"""Pictures of a what-if: GT | original | edited | edited - original, frame by frame.

During the context, "original" is the true frame the model reads and "edited" the frame
after the edits; afterwards both are predictions. Drawn like every export
(:mod:`mimviewer.export`): data colour scale for frames, a diverging scale symmetric about
zero (in the data's physical units) for the difference, context marked blue, predictions orange.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

from mimviewer.export import (
    BACKGROUND,
    BORDER,
    CONTEXT_COLOUR,
    DIVERGING_LUT,
    HEADER,
    LABEL,
    MARGIN,
    PREDICTED_COLOUR,
    ExportError,
    Scale,
    _colour_scale,
    _draw_scale,
    _enlarge,
    _fit,
    _pad_to,
    _text,
    atomic_path,
    frames_physical,
    frames_rgb,
)
from mimviewer.whatif import WhatIf

PANELS = ("ground truth", "original", "edited", "edited - original")
NOT_OBSERVED = (40, 40, 40)


def whatif_sequences(result: WhatIf) -> tuple[np.ndarray, np.ndarray]:
    """(original, edited) over context + prediction, (pre + aft, C, H, W) each."""
    original = np.concatenate([result.context, result.original.prediction[0]])
    edited = np.concatenate([result.edited_context, result.edited.prediction[0]])
    return original, edited


def render_whatif(
    result: WhatIf, gt: np.ndarray | None = None, *, units: str = "intensity"
) -> Iterator[np.ndarray]:
    """One RGB image per frame (context then predicted); ``gt`` (T, C, H, W) may be shorter or None."""
    scale = _colour_scale(units, None)
    original, edited = whatif_sequences(result)
    total, pre = len(original), len(result.context)
    difference = frames_physical(edited, scale) - frames_physical(original, scale)
    largest = float(np.nanmax(np.abs(difference))) or 1e-6
    diff_label = "edited - original" + ("" if units == "intensity" else f" ({units})")
    diff_scale = Scale(DIVERGING_LUT, -largest, largest, diff_label)
    h, w = original.shape[-2:]
    zoom = max(1, math.ceil(128 / max(h, w)))
    ph, pw = h * zoom, w * zoom
    xs = [MARGIN + i * (pw + 2 * BORDER + MARGIN) + BORDER for i in range(len(PANELS))]
    width = xs[-1] + pw + BORDER + MARGIN + 2 * 104
    height = HEADER + LABEL + ph + 2 * BORDER + MARGIN
    top = HEADER + LABEL + BORDER
    background = np.empty((height, width, 3), np.uint8)
    background[:] = BACKGROUND
    for x, name in zip(xs, PANELS, strict=True):
        _text(background, _fit(name, pw), x, top - BORDER - 5)
    _draw_scale(background, xs[-1] + pw + 2 * MARGIN, top + 10, ph - 10, scale)
    _draw_scale(background, xs[-1] + pw + 2 * MARGIN + 104, top + 10, ph - 10, diff_scale)
    truth = frames_rgb(gt, scale) if gt is not None and len(gt) else None
    shown_original, shown_edited = frames_rgb(original, scale), frames_rgb(edited, scale)
    changed = set(np.flatnonzero(np.any(result.edited_context != result.context, axis=(1, 2, 3))).tolist())
    for t in range(total):
        image = background.copy()
        predicted = t >= pre
        colour = PREDICTED_COLOUR if predicted else CONTEXT_COLOUR
        role = (
            f"predicted +{t - pre + 1}" if predicted else ("context, edited" if t in changed else "context")
        )
        _text(image, f"frame {t}/{total - 1}", MARGIN, 16, scale=0.5)
        _text(image, role, MARGIN + 110, 16, colour, 0.5)
        gt_panel = None if truth is None or t >= len(truth) else truth[t]
        panels = [gt_panel, shown_original[t], shown_edited[t], diff_scale.colour(difference[t])]
        for x, panel in zip(xs, panels, strict=True):
            image[top - BORDER : top + ph + BORDER, x - BORDER : x + pw + BORDER] = colour
            if panel is None:
                image[top : top + ph, x : x + pw] = NOT_OBSERVED
                _text(image, "not observed", x + 6, top + ph // 2)
            else:
                image[top : top + ph, x : x + pw] = _enlarge(panel, zoom)
        yield image


def write_whatif(
    path: str | Path,
    result: WhatIf,
    gt: np.ndarray | None = None,
    *,
    units: str = "intensity",
    fps: float = 4,
) -> Path:
    """Write :func:`render_whatif` as an animated GIF or an MP4, chosen by suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ExportError(f"{path}: what-if comparisons are .gif or .mp4")
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            writer = imageio.get_writer(tmp, mode="I", duration=1000.0 / fps, loop=0)
        else:
            writer = imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=16)
        with writer:
            for frame in render_whatif(result, gt, units=units):
                writer.append_data(_pad_to(frame, 16) if suffix == ".mp4" else frame)
    return path
