"""Pictures of a what-if: GT | original | edited | edited - original, frame by frame.

During the context, "original" is the true frame the model reads and "edited" the frame
after the edits; afterwards both are predictions. Drawn by the one frame renderer
(:class:`mimviewer.render.FrameRenderer`) like every export: the data's colour scale for
frames, and its one difference rule (channel mean, fixed symmetric range) for edited −
original; context marked blue, predictions orange.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mimviewer.export import write_video
from mimviewer.export.drawing import (
    BACKGROUND,
    BORDER,
    COLOURBAR_SPACE,
    CONTEXT_COLOUR,
    HEADER,
    LABEL,
    MARGIN,
    PREDICTED_COLOUR,
    _draw_scale,
    _enlarge,
    _fit,
    _text,
)
from mimviewer.export.frames import _renderer
from mimviewer.render import DIVERGING, FrameRenderer
from mimviewer.whatif import WhatIf

PANELS = ("ground truth", "original", "edited", "edited - original")
NOT_OBSERVED = (40, 40, 40)


def whatif_sequences(result: WhatIf) -> tuple[np.ndarray, np.ndarray]:
    """(original, edited) over context + prediction, (pre + aft, C, H, W) each."""
    original = np.concatenate([result.context, result.original.prediction[0]])
    edited = np.concatenate([result.edited_context, result.edited.prediction[0]])
    return original, edited


def render_whatif(
    result: WhatIf,
    gt: np.ndarray | None = None,
    *,
    units: str = "intensity",
    renderer: FrameRenderer | None = None,
) -> Iterator[np.ndarray]:
    """One RGB image per frame (context then predicted); ``gt`` (T, C, H, W) may be shorter or None."""
    renderer = renderer or _renderer(units, None)
    original, edited = whatif_sequences(result)
    total, pre = len(original), len(result.context)
    bar = renderer.difference_bar()
    diff_bar = dataclasses.replace(bar, title=bar.title.replace("prediction − GT", "edited − original"))
    h, w = original.shape[-2:]
    zoom = max(1, math.ceil(128 / max(h, w)))
    ph, pw = h * zoom, w * zoom
    xs = [MARGIN + i * (pw + 2 * BORDER + MARGIN) + BORDER for i in range(len(PANELS))]
    width = xs[-1] + pw + BORDER + MARGIN + 2 * COLOURBAR_SPACE
    height = HEADER + LABEL + ph + 2 * BORDER + MARGIN
    top = HEADER + LABEL + BORDER
    background = np.empty((height, width, 3), np.uint8)
    background[:] = BACKGROUND
    for x, name in zip(xs, PANELS, strict=True):
        _text(background, _fit(name, pw), x, top - BORDER - 5)
    _draw_scale(background, xs[-1] + pw + 2 * MARGIN, top + 10, ph - 10, renderer.frame_bar(), renderer.lut)
    _draw_scale(
        background, xs[-1] + pw + 2 * MARGIN + COLOURBAR_SPACE, top + 10, ph - 10, diff_bar, DIVERGING
    )
    truth = renderer.frames(gt) if gt is not None and len(gt) else None
    shown_original, shown_edited = renderer.frames(original), renderer.frames(edited)
    differences = renderer.differences(edited, original)
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
        panels = [gt_panel, shown_original[t], shown_edited[t], differences[t]]
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
    return write_video(path, render_whatif(result, gt, units=units), fps=fps)
