"""The comparison animation: GT | prediction | difference (| 2nd prediction | difference) per frame.

Frames and differences are drawn by :class:`mimviewer.render.FrameRenderer`, the window's
renderer; context frames get a blue border, predicted ones orange.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mimviewer.errors import ShapeError
from mimviewer.export.drawing import (
    BACKGROUND,
    BORDER,
    COLOURBAR_SPACE,
    CONTEXT_COLOUR,
    HEADER,
    LABEL,
    MARGIN,
    MIN_PANEL,
    PREDICTED_COLOUR,
    _draw_absent,
    _draw_scale,
    _enlarge,
    _fit,
    _text,
    _text_width,
)
from mimviewer.export.frames import _check_frames, _renderer, observed_frames
from mimviewer.export.writers import VIDEO_SUFFIXES, ExportError, write_video
from mimviewer.render import DIVERGING, FrameRenderer


@dataclass(frozen=True)
class ComparisonLayout:
    """Where each panel of a comparison frame sits (pixels), so callers and tests can find them."""

    names: tuple[str, ...]  # panel titles, left to right
    zoom: int  # frame pixels -> screen pixels
    panel_height: int
    panel_width: int
    width: int
    height: int

    def panel_origin(self, index: int) -> tuple[int, int]:
        """(y, x) of the top-left image pixel of panel ``index`` (inside its border)."""
        x = MARGIN + index * (self.panel_width + 2 * BORDER + MARGIN) + BORDER
        return HEADER + LABEL + BORDER, x

    def border_pixel(self, index: int) -> tuple[int, int]:
        """(y, x) of a pixel in the middle of panel ``index``'s left border."""
        y, x = self.panel_origin(index)
        return y + self.panel_height // 2, x - BORDER + 1


def comparison_layout(gt: np.ndarray, predictions: Mapping[str, np.ndarray]) -> ComparisonLayout:
    names = ["ground truth"]
    for name in predictions:
        names += [name, f"{name} - GT"]
    h, w = gt.shape[-2:]
    zoom = max(1, math.ceil(MIN_PANEL / max(h, w)))
    ph, pw = h * zoom, w * zoom
    width = MARGIN + len(names) * (pw + 2 * BORDER + MARGIN) + 2 * COLOURBAR_SPACE
    height = HEADER + LABEL + ph + 2 * BORDER + MARGIN
    return ComparisonLayout(tuple(names), zoom, ph, pw, width, height)


def _title(name: str, width: int) -> str:
    """A panel title that fits: a difference panel keeps its " - GT" and loses letters of the name."""
    if name.endswith(" - GT"):
        return _fit(name[: -len(" - GT")], width - _text_width(" - GT")) + " - GT"
    return _fit(name, width)


def render_comparison(
    gt: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    pre: int,
    units: str = "intensity",
    colour_scale: str | None = None,
    renderer: FrameRenderer | None = None,
    notes: Sequence[str] | None = None,
) -> Iterator[np.ndarray]:
    """Yield one RGB uint8 image per frame: GT | prediction | difference (| 2nd prediction | difference).

    During context frames the prediction panels show the frame the model reads (the truth)
    and the difference is zero; a blue border marks context, an orange one predictions.
    A NaN ``gt`` frame is not observed yet (a forecast past the end of the data): its GT
    panel says so and it has no difference. ``notes`` (one per frame) replace the role in
    the title line, e.g. a forecast's lead and valid time (:meth:`ForecastPlan.frame_note`).
    Frames and differences are drawn by ``renderer`` (default: the one for ``units`` and
    ``colour_scale``, a name from :data:`mimviewer.render.SCALES`), as the window draws them.
    """
    gt = np.asarray(gt, dtype=np.float32)
    predictions = {name: np.asarray(p, dtype=np.float32) for name, p in predictions.items()}
    _check_frames(gt, predictions, pre)
    layout = comparison_layout(gt, predictions)
    renderer = renderer or _renderer(units, colour_scale)
    truth_rgb = renderer.frames(gt)
    shown_rgb = {name: renderer.frames(p) for name, p in predictions.items()}
    diff_rgb = {name: renderer.differences(p, gt[pre:]) for name, p in predictions.items()}
    no_diff = renderer.differences(gt[0], gt[0])

    background = np.empty((layout.height, layout.width, 3), np.uint8)
    background[:] = BACKGROUND
    for index, name in enumerate(layout.names):
        y, x = layout.panel_origin(index)
        _text(background, _title(name, layout.panel_width), x, y - BORDER - 5)
    bar_x = layout.width - 2 * COLOURBAR_SPACE + 4
    bar_y = HEADER + LABEL + BORDER
    _draw_scale(background, bar_x, bar_y, layout.panel_height, renderer.frame_bar(), renderer.lut)
    _draw_scale(
        background, bar_x + COLOURBAR_SPACE, bar_y, layout.panel_height, renderer.difference_bar(), DIVERGING
    )

    total = len(gt)
    seen = observed_frames(gt)
    if notes is not None and len(notes) != total:
        raise ShapeError(f"notes must give one line per frame ({total}), got {len(notes)}")
    for t in range(total):
        predicted = t >= pre
        image = background.copy()
        role = f"predicted +{t - pre + 1}" if predicted else "context (model reads the truth)"
        role = notes[t] if notes is not None else role
        colour = PREDICTED_COLOUR if predicted else CONTEXT_COLOUR
        _text(image, f"frame {t}/{total - 1}", MARGIN, 16, scale=0.5)
        _text(image, role, MARGIN + _text_width(f"frame {total - 1}/{total - 1}", 0.5) + 12, 16, colour, 0.5)
        panels: list[np.ndarray | str] = [truth_rgb[t] if seen[t] else "not observed yet"]
        for name in predictions:
            if not predicted:
                panels += [truth_rgb[t], no_diff]
            elif seen[t]:
                panels += [shown_rgb[name][t - pre], diff_rgb[name][t - pre]]
            else:
                panels += [shown_rgb[name][t - pre], "no truth to compare"]
        for index, panel in enumerate(panels):
            y, x = layout.panel_origin(index)
            image[
                y - BORDER : y + layout.panel_height + BORDER, x - BORDER : x + layout.panel_width + BORDER
            ] = colour
            if isinstance(panel, str):
                _draw_absent(image, y, x, layout.panel_height, layout.panel_width, panel)
            else:
                image[y : y + layout.panel_height, x : x + layout.panel_width] = _enlarge(panel, layout.zoom)
        yield image


def write_comparison(
    path: str | Path,
    gt: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    pre: int,
    fps: float = 4,
    units: str = "intensity",
    colour_scale: str | None = None,
    loop: bool = True,
    renderer: FrameRenderer | None = None,
    inputs=(),
    notes: Sequence[str] | None = None,
) -> Path:
    """Write the side-by-side comparison as an animated GIF or an MP4 (H.264), chosen by suffix
    (``notes``: see :func:`render_comparison`)."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ExportError(f"{path}: comparison videos are .gif or .mp4, not {path.suffix or 'no suffix'!r}")
    if len(predictions) not in (1, 2):
        raise ExportError(f"{path}: a comparison shows one or two predictions, got {len(predictions)}")
    frames = render_comparison(
        gt, predictions, pre=pre, units=units, colour_scale=colour_scale, renderer=renderer, notes=notes
    )
    return write_video(path, frames, fps=fps, loop=loop, inputs=inputs)
