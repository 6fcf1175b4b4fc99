"""Files for reports and slides: GIF/MP4 comparisons, PNG strips, metrics and gate statistics.

Images are drawn with numpy and OpenCV (``cv2.putText``) only — no Qt, no matplotlib — so
the CLI, the GUI and a headless server export the same pixels. Every writer is atomic: it
writes a temporary file next to the target and renames it over the target at the end, so a
failed export never leaves a half-written file where the user's old one was.

Frames come in model scale [0, 1] as ``(T, C, H, W)``: ``gt`` holds the whole sequence
(``pre`` context frames, then the frames to predict) and every prediction holds the
predicted frames only, ``(T - pre, C, H, W)``.

Numbering: frames and steps count from 0 everywhere — in images ("frame 0/19"), in the
window, in CSV/JSON files (metrics' ``frame`` column, gate statistics' ``step`` and
``predicts_frame``) and in the arrays; step t reads frame t and predicts frame t + 1.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np

from mimviewer.data.colors import ColorScale, color_scale
from mimviewer.errors import MimviewerError, ShapeError
from mimviewer.metrics import summary
from mimviewer.trace import KIND_MEASURES, STAT_NAMES, Trace

# Border colours (RGB) that tell context frames (the model reads the truth) from predicted ones.
CONTEXT_COLOUR = (70, 150, 255)
PREDICTED_COLOUR = (255, 140, 0)
BACKGROUND = (24, 24, 24)
TEXT_COLOUR = (235, 235, 235)

BORDER = 3  # px of role colour around every panel
MARGIN = 8  # px between panels
HEADER = 24  # px of the title line (frame index and role)
LABEL = 18  # px of the panel name above each panel
COLOURBAR_WIDTH = 12
COLOURBAR_SPACE = 104  # bar + tick labels (and room for its title)
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.4
MIN_PANEL = 128  # small frames are enlarged (nearest neighbour) to at least this many pixels

VIDEO_SUFFIXES = (".gif", ".mp4")


class ExportError(MimviewerError):
    """An export that cannot be written (unknown file type, failed writer)."""


# -- atomic files --------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on failure it goes."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# -- colour scales -------------------------------------------------------------------------
def _lut_from_anchors(anchors: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """(256, 3) uint8 table interpolating evenly spaced RGB anchors."""
    points = np.linspace(0, 255, len(anchors))
    steps = np.arange(256)
    return np.stack([np.interp(steps, points, [a[k] for a in anchors]) for k in range(3)], 1).astype(np.uint8)


def _cv2_lut(colormap: int) -> np.ndarray:
    """One of OpenCV's colormaps as a (256, 3) RGB table."""
    return cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], colormap)[:, 0, ::-1].copy()


VIRIDIS_LUT = _cv2_lut(cv2.COLORMAP_VIRIDIS)
# Blue - white - red, for signed values centred on zero (differences, memories).
DIVERGING_LUT = _lut_from_anchors(
    [(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43)]
)


@dataclass(frozen=True)
class Scale:
    """Values -> colours: a 256-entry table stretched linearly over [vmin, vmax], with its label.

    Used for differences and heatmaps; frames themselves use :mod:`mimviewer.data.colors`.
    """

    lut: np.ndarray  # (256, 3) uint8 RGB
    vmin: float
    vmax: float
    label: str  # what the colour bar says, e.g. "pred - GT (dBZ)"

    def colour(self, values: np.ndarray) -> np.ndarray:
        """(...) values -> (..., 3) uint8 RGB; NaN shows as the background colour."""
        values = np.asarray(values, dtype=np.float64)
        span = self.vmax - self.vmin or 1.0
        scaled = np.nan_to_num((values - self.vmin) / span, nan=0.0)
        rgb = self.lut[np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)]
        rgb[np.isnan(values)] = BACKGROUND
        return rgb

    def ticks(self) -> list[tuple[float, str]]:
        """(position from the bottom in [0, 1], label) for a colour bar."""
        return [(p, _format_tick(self.vmin + p * (self.vmax - self.vmin))) for p in (0.0, 0.5, 1.0)]


def _colour_scale(units: str, name: str | None) -> ColorScale:
    try:
        return color_scale(units, name)
    except ValueError as exc:
        raise ExportError(str(exc)) from exc


def frames_rgb(frames: np.ndarray, scale: ColorScale) -> np.ndarray:
    """Model-scale frames (..., C, H, W) -> RGB uint8 (..., H, W, 3) as the viewer shows them.

    Three-channel intensity (video) stays RGB; otherwise the first channel goes through ``scale``.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.shape[-3] == 3 and scale.units == "intensity":
        return np.clip(np.rint(np.moveaxis(frames, -3, -1) * 255), 0, 255).astype(np.uint8)
    return scale.unit_to_rgb(frames[..., 0, :, :])


def frames_physical(frames: np.ndarray, scale: ColorScale) -> np.ndarray:
    """Model-scale frames (..., C, H, W) -> physical values (..., H, W) (channel mean for video)."""
    frames = np.asarray(frames, dtype=np.float32)
    plane = frames.mean(-3) if frames.shape[-3] == 3 and scale.units == "intensity" else frames[..., 0, :, :]
    return scale.to_physical(plane)


def _colour_scale_ticks(scale: ColorScale) -> list[tuple[float, str]]:
    bar = scale.colorbar()
    return list(zip(bar.positions, bar.labels, strict=True))


# -- drawing helpers -----------------------------------------------------------------------
def _text(
    image: np.ndarray, text: str, x: int, y: int, colour=TEXT_COLOUR, scale: float = FONT_SCALE
) -> None:
    """Draw ``text`` with its baseline at (x, y)."""
    cv2.putText(image, text, (x, y), FONT, scale, colour, 1, cv2.LINE_AA)


def _text_width(text: str, scale: float = FONT_SCALE) -> int:
    return cv2.getTextSize(text, FONT, scale, 1)[0][0]


def _fit(text: str, width: int) -> str:
    """Shorten ``text`` with '..' until it fits in ``width`` pixels."""
    while len(text) > 3 and _text_width(text) > width:
        text = text[:-3] + ".."
    return text


def _enlarge(rgb: np.ndarray, zoom: int) -> np.ndarray:
    return rgb if zoom == 1 else np.repeat(np.repeat(rgb, zoom, 0), zoom, 1)


def _format_tick(value: float) -> str:
    return f"{value:.3g}"


def _draw_colourbar(
    image: np.ndarray,
    x: int,
    y: int,
    height: int,
    column: np.ndarray,
    ticks: Sequence[tuple[float, str]],
    title: str,
) -> None:
    """A vertical colour bar: ``column`` (height, 3) top to bottom, ticks at positions from the bottom."""
    image[y : y + height, x : x + COLOURBAR_WIDTH] = column[:, None]
    last_y = -100
    for position, label in sorted(ticks, key=lambda tick: -tick[0]):  # top first
        if not 0.0 <= position <= 1.0:
            continue
        ty = y + round((1.0 - position) * (height - 1))
        if ty - last_y < 11:  # keep labels readable: skip one that would overlap
            continue
        last_y = ty
        image[ty, x + COLOURBAR_WIDTH : x + COLOURBAR_WIDTH + 3] = TEXT_COLOUR
        _text(image, label, x + COLOURBAR_WIDTH + 5, min(max(ty + 4, y + 8), y + height + 3))
    _text(image, _fit(title, COLOURBAR_SPACE - 4), x, y - 5)


def _draw_scale(image: np.ndarray, x: int, y: int, height: int, scale: Scale | ColorScale) -> None:
    positions = np.linspace(1.0, 0.0, height)
    if isinstance(scale, Scale):
        column = scale.colour(scale.vmin + positions * (scale.vmax - scale.vmin))
        _draw_colourbar(image, x, y, height, column, scale.ticks(), scale.label)
    else:
        column = scale.unit_to_rgb(positions)
        _draw_colourbar(image, x, y, height, column, _colour_scale_ticks(scale), scale.units)


def _pad_to(image: np.ndarray, multiple: int) -> np.ndarray:
    """Pad the bottom/right with background so both sides divide ``multiple`` (video codecs)."""
    h, w = image.shape[:2]
    out = np.empty((-(-h // multiple) * multiple, -(-w // multiple) * multiple, 3), np.uint8)
    out[:] = BACKGROUND
    out[:h, :w] = image
    return out


# -- comparison video ----------------------------------------------------------------------
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


def difference_scale(
    gt: np.ndarray, predictions: Mapping[str, np.ndarray], pre: int, scale: ColorScale
) -> Scale:
    """Symmetric scale for prediction - truth in physical units, shared by every model."""
    truth = frames_physical(gt[pre:], scale)
    errors = [np.abs(frames_physical(p, scale) - truth) for p in predictions.values()]
    largest = max((float(np.nanmax(e)) for e in errors if e.size), default=0.0) or 1e-6
    label = "pred - GT" if scale.units == "intensity" else f"pred - GT ({scale.units})"
    return Scale(DIVERGING_LUT, -largest, largest, label)


def render_comparison(
    gt: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    pre: int,
    units: str = "intensity",
    colour_scale: str | None = None,
) -> Iterator[np.ndarray]:
    """Yield one RGB uint8 image per frame: GT | prediction | difference (| 2nd prediction | difference).

    During context frames the prediction panels show the frame the model reads (the truth)
    and the difference is zero; a blue border marks context, an orange one predictions.
    ``colour_scale`` names one of :data:`mimviewer.data.colors.SCALES` (default: by units).
    """
    gt = np.asarray(gt, dtype=np.float32)
    predictions = {name: np.asarray(p, dtype=np.float32) for name, p in predictions.items()}
    _check_frames(gt, predictions, pre)
    layout = comparison_layout(gt, predictions)
    scale = _colour_scale(units, colour_scale)
    diff_scale = difference_scale(gt, predictions, pre, scale)
    truth_rgb = frames_rgb(gt, scale)
    truth = frames_physical(gt, scale)
    shown_rgb = {name: frames_rgb(p, scale) for name, p in predictions.items()}
    shown = {name: frames_physical(p, scale) for name, p in predictions.items()}

    background = np.empty((layout.height, layout.width, 3), np.uint8)
    background[:] = BACKGROUND
    for index, name in enumerate(layout.names):
        y, x = layout.panel_origin(index)
        _text(background, _fit(name, layout.panel_width), x, y - BORDER - 5)
    bar_x = layout.width - 2 * COLOURBAR_SPACE + 4
    bar_y = HEADER + LABEL + BORDER
    _draw_scale(background, bar_x, bar_y, layout.panel_height, scale)
    _draw_scale(background, bar_x + COLOURBAR_SPACE, bar_y, layout.panel_height, diff_scale)

    total = len(gt)
    for t in range(total):
        predicted = t >= pre
        image = background.copy()
        role = f"predicted +{t - pre + 1}" if predicted else "context (model reads the truth)"
        colour = PREDICTED_COLOUR if predicted else CONTEXT_COLOUR
        _text(image, f"frame {t}/{total - 1}", MARGIN, 16, scale=0.5)
        _text(image, role, MARGIN + _text_width(f"frame {total - 1}/{total - 1}", 0.5) + 12, 16, colour, 0.5)
        panels = [truth_rgb[t]]
        for name in predictions:
            if predicted:
                panels += [shown_rgb[name][t - pre], diff_scale.colour(shown[name][t - pre] - truth[t])]
            else:
                panels += [truth_rgb[t], diff_scale.colour(np.zeros_like(truth[t]))]
        for index, panel in enumerate(panels):
            y, x = layout.panel_origin(index)
            image[
                y - BORDER : y + layout.panel_height + BORDER, x - BORDER : x + layout.panel_width + BORDER
            ] = colour
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
) -> Path:
    """Write the side-by-side comparison as an animated GIF or an MP4 (H.264), chosen by suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ExportError(f"{path}: comparison videos are .gif or .mp4, not {suffix or 'no suffix'!r}")
    if len(predictions) not in (1, 2):
        raise ExportError(f"{path}: a comparison shows one or two predictions, got {len(predictions)}")
    if fps <= 0:
        raise ExportError(f"{path}: fps must be positive, got {fps}")
    frames = render_comparison(gt, predictions, pre=pre, units=units, colour_scale=colour_scale)
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            writer = imageio.get_writer(tmp, mode="I", duration=1000.0 / fps, loop=0 if loop else 1)
        else:
            writer = imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=16)
        with writer:
            for frame in frames:
                writer.append_data(_pad_to(frame, 16) if suffix == ".mp4" else frame)
    return path


# -- PNG strip -----------------------------------------------------------------------------
def render_strip(
    gt: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    *,
    pre: int,
    units: str = "intensity",
    every: int = 1,
    colour_scale: str | None = None,
) -> np.ndarray:
    """One RGB image: rows = GT and each prediction, columns = frames (every ``every``-th).

    Column borders mark context (blue) and predicted (orange) frames; predictions have no
    cells under the context columns.
    """
    gt = np.asarray(gt, dtype=np.float32)
    predictions = {name: np.asarray(p, dtype=np.float32) for name, p in predictions.items()}
    _check_frames(gt, predictions, pre)
    scale = _colour_scale(units, colour_scale)
    rows = [("ground truth", frames_rgb(gt, scale), 0)]
    rows += [(name, frames_rgb(p, scale), pre) for name, p in predictions.items()]
    columns = list(range(0, len(gt), max(1, every)))
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
        _text(image, _fit(str(t + 1), cell_w), x, LABEL - 5, colour)
        for r, (_, frames, first) in enumerate(rows):
            if t < first:
                continue
            y = LABEL + r * (cell_h + 2)
            image[y : y + cell_h, x : x + cell_w] = colour
            panel = _enlarge(frames[t - first], zoom)
            image[y + BORDER : y + cell_h - BORDER, x + BORDER : x + cell_w - BORDER] = panel
    for r, (name, _, _) in enumerate(rows):
        _text(image, name, MARGIN, LABEL + r * (cell_h + 2) + cell_h // 2 + 4)
    bar_height = max(20, len(rows) * (cell_h + 2) - 2 - LABEL)
    _draw_scale(image, width - COLOURBAR_SPACE, 2 * LABEL, bar_height, scale)
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
) -> Path:
    """Write :func:`render_strip` as a PNG."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ExportError(f"{path}: strips are written as .png")
    write_png(
        path, render_strip(gt, predictions, pre=pre, units=units, every=every, colour_scale=colour_scale)
    )
    return path


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG, atomically."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ExportError(f"{path}: could not encode the image as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return Path(path)


# -- metrics -------------------------------------------------------------------------------
def _number(value: float) -> float | None:
    """JSON has no NaN or infinity: write them as null."""
    value = float(value)
    return value if math.isfinite(value) else None


def write_metrics_csv(path: str | Path, metrics: Mapping[str, np.ndarray], *, first_frame: int = 0) -> Path:
    """One row per frame: ``frame`` (index in the sequence, from ``first_frame``) then every metric.

    Values are written at full precision; NaN/inf as ``nan``/``inf`` (Python's float() reads them).
    """
    keys = list(metrics)
    length = len(next(iter(metrics.values()))) if keys else 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["frame", *keys])
    for i in range(length):
        writer.writerow([first_frame + i, *(repr(float(metrics[k][i])) for k in keys)])
    _write_text(path, buffer.getvalue())
    return Path(path)


def write_metrics_json(
    path: str | Path,
    metrics: Mapping[str, np.ndarray],
    *,
    first_frame: int = 0,
    extra: Mapping[str, object] | None = None,
) -> Path:
    """``{...extra, "first_frame", "per_frame": {metric: [...]}, "summary": {metric: mean}}``.

    JSON has no NaN or infinity: undefined scores and the PSNR of perfect frames are null.
    """
    document = {
        **(extra or {}),
        "first_frame": first_frame,
        "per_frame": {k: [_number(v) for v in np.asarray(values).ravel()] for k, values in metrics.items()},
        "summary": {k: _number(v) for k, v in summary(dict(metrics)).items()},
    }
    _write_text(path, json.dumps(document, indent=2) + "\n")
    return Path(path)


# -- gate statistics -----------------------------------------------------------------------
TRACE_COLUMNS: tuple[str, ...] = (
    "layer",
    "quantity",
    "kind",
    "step",
    "predicts_frame",
    "phase",
    "sample",
    *STAT_NAMES,
)


def trace_rows(trace: Trace) -> list[dict[str, object]]:
    """Every statistic of every (layer, quantity, step, sample) as flat records.

    A statistic is None where it does not exist: at steps that did not compute the
    quantity (``trace.valid``: MIM-N at step 0, E3D-LSTM's resting steps), and for
    ``frac_still`` of anything but dH.
    """
    rows: list[dict[str, object]] = []
    for layer in range(trace.num_layers):
        for name in trace.quantities(layer):
            if not trace.has(layer, name):
                continue
            stats = np.stack([trace.stat(layer, name, s) for s in STAT_NAMES], -1)  # (steps, B, 6)
            valid = trace.valid_steps(layer, name)
            kind = trace.kind(layer, name)
            for step in range(stats.shape[0]):
                for sample in range(stats.shape[1]):
                    row: dict[str, object] = {
                        "layer": layer,
                        "quantity": name,
                        "kind": kind,
                        "step": step,
                        "predicts_frame": step + 1,
                        "phase": "predicted" if step + 1 >= trace.pre else "context",
                        "sample": sample,
                    }
                    values = stats[step, sample]
                    row.update(
                        {
                            s: float(v) if valid[step] and math.isfinite(v) else None
                            for s, v in zip(STAT_NAMES, values, strict=True)
                        }
                    )
                    rows.append(row)
    return rows


def write_trace_stats(path: str | Path, trace: Trace) -> Path:
    """Gate and memory statistics per layer / quantity / step / sample as .csv or .json.

    ``frac_low``/``frac_high``: share of values below / above the thresholds of the
    quantity's kind (gates: saturated, < lo / > hi; states: large, < -a / > a; dH:
    changing, <= -eps / >= eps); ``frac_still``: share of dH with ``|value| < eps`` (the
    state did not change). A statistic that does not exist is empty in CSV, null in JSON:
    at steps that did not compute the quantity, and frac_still of anything but dH.
    """
    path = Path(path)
    rows = trace_rows(trace)
    spec = trace.spec
    if path.suffix.lower() == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=TRACE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: repr(v) if isinstance(v, float) else "" if v is None else v for k, v in row.items()}
            )
        _write_text(path, buffer.getvalue())
    elif path.suffix.lower() == ".json":
        document = {
            "pre": trace.pre,
            "aft": trace.aft,
            "lo": spec.lo,
            "hi": spec.hi,
            "eps": spec.eps,
            "state_bound": spec.state_bound,
            "channel": spec.channel,
            "measures": KIND_MEASURES,
            "rows": rows,
        }
        _write_text(path, json.dumps(document, indent=1, allow_nan=False) + "\n")
    else:
        raise ExportError(f"{path}: gate statistics are written as .csv or .json")
    return path


# -- heatmap grid --------------------------------------------------------------------------
def _as_image(values: np.ndarray) -> np.ndarray:
    """A map (H', W') stays; a unit vector (U,) or (1, U) of the 1-D family becomes a row."""
    values = np.asarray(values, dtype=np.float32)
    return values[None] if values.ndim == 1 else values.reshape(-1, values.shape[-1])


def heatmap_scale(trace: Trace, layer: int, name: str, reduction: str, sample: int = 0) -> Scale:
    """Colour scale of one heatmap, fixed over all steps so it does not flicker while scrubbing.

    Fractions and values inside [0, 1] (gates) use viridis over [0, 1]; signed values
    (memories, candidates, dH) use blue-white-red, symmetric about zero.
    """
    maps = trace.map(layer, name, reduction)[:, sample]
    low, high = float(np.nanmin(maps)), float(np.nanmax(maps))
    if reduction in ("low", "high", "saturated") or (low >= 0.0 and high <= 1.0):
        return Scale(VIRIDIS_LUT, 0.0, 1.0, name)
    largest = max(abs(low), abs(high)) or 1e-6
    return Scale(DIVERGING_LUT, -largest, largest, name)


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
            scale = heatmap_scale(trace, layer, name, reduction, sample)
            values = _as_image(trace.map(layer, name, reduction)[step, sample])
            h, w = values.shape
            fit = min(cell / h, cell / w)
            size = (max(1, round(w * fit)), max(cell // 6 if h == 1 else 1, round(h * fit)))
            tile = cv2.resize(scale.colour(values), size, interpolation=cv2.INTER_NEAREST)
            oy, ox = y + (cell - tile.shape[0]) // 2, x + (cell - tile.shape[1]) // 2
            image[oy : oy + tile.shape[0], ox : ox + tile.shape[1]] = tile
            symmetric = scale.vmin == -scale.vmax
            span = f"+-{scale.vmax:.2g}" if symmetric else f"{scale.vmin:g} to {scale.vmax:g}"
            _text(image, _fit(span, cell), x, y + cell + 13, scale=0.35)
    return image
