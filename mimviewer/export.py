"""Files for reports and slides: GIF/MP4 comparisons, PNG strips, metrics and gate statistics.

Images are drawn with numpy and OpenCV (``cv2.putText``) only — no Qt, no matplotlib — so
the CLI, the GUI and a headless server export the same pixels; frames and differences are
drawn by :class:`mimviewer.render.FrameRenderer`, the window's renderer. Every writer goes
through :mod:`mimviewer.atomic`, so a failed export never leaves a half-written file where the
user's old one was.

Frames come in model scale [0, 1] as ``(T, C, H, W)``: ``gt`` holds the whole sequence
(``pre`` context frames, then the frames to predict) and every prediction holds the
predicted frames only, ``(T - pre, C, H, W)``.

Numbering: frames and steps count from 0 everywhere — in images ("frame 0/19"), in the
window, in CSV/JSON files (metrics' ``frame`` column, gate statistics' ``step`` and
``predicts_frame``) and in the arrays; step t reads frame t and predicts frame t + 1.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import imageio.v2 as imageio
import numpy as np

from mimviewer.atomic import OutputError, PathLike, atomic_path, write_bytes, write_text
from mimviewer.errors import ShapeError
from mimviewer.metrics import summary
from mimviewer.render import DIVERGING, ColourBar, ColourScale, FrameRenderer, value_scale
from mimviewer.trace import KIND_MEASURES, STAT_NAMES, Trace

# Border colours (RGB) that tell context frames (the model reads the truth) from predicted ones.
CONTEXT_COLOUR = (70, 150, 255)
PREDICTED_COLOUR = (255, 140, 0)
BACKGROUND = (24, 24, 24)
TEXT_COLOUR = (235, 235, 235)
ABSENT_COLOUR = (56, 56, 56)  # a panel without data (truth not observed yet)
ABSENT_HATCH = (80, 80, 80)

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


class ExportError(OutputError):
    """An export that cannot be written (unknown file type, failed writer)."""


def _renderer(units: str, name: str | None) -> FrameRenderer:
    try:
        return FrameRenderer.for_units(units, name)
    except ValueError as exc:
        raise ExportError(str(exc)) from exc


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


def _draw_scale(image: np.ndarray, x: int, y: int, height: int, bar: ColourBar, table: np.ndarray) -> None:
    """A colour bar of ``table`` (256 colours from the bottom up) labelled as ``bar`` says."""
    positions = np.linspace(1.0, 0.0, height)
    column = table[np.rint(positions * (len(table) - 1)).astype(np.intp)]
    _draw_colourbar(image, x, y, height, column, list(zip(bar.positions, bar.labels, strict=True)), bar.title)


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


def observed_frames(gt: np.ndarray) -> np.ndarray:
    """(T,) bool: frames that have a truth (a NaN frame is one not observed yet)."""
    return ~np.isnan(np.asarray(gt)).all(axis=tuple(range(1, np.ndim(gt))))


def _draw_absent(image: np.ndarray, y: int, x: int, height: int, width: int, text: str) -> None:
    """A panel with nothing to show (no truth yet): hatched grey with the reason, never a zero frame."""
    area = image[y : y + height, x : x + width]
    area[:] = ABSENT_COLOUR
    rows, cols = np.indices((height, width))
    area[(rows + cols) % 12 == 0] = ABSENT_HATCH
    words = text.split()
    half = len(words) // 2 or 1
    for i, line in enumerate(line for line in (" ".join(words[:half]), " ".join(words[half:])) if line):
        tx = x + max(2, (width - _text_width(line)) // 2)
        _text(image, _fit(line, width - 4), tx, y + height // 2 + 14 * i)


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


# -- PNG strip -----------------------------------------------------------------------------
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


def write_png(path: str | Path, image: np.ndarray, inputs=()) -> Path:
    """Write an RGB uint8 image as PNG, atomically."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ExportError(f"{path}: could not encode the image as PNG")
    return write_bytes(path, encoded.tobytes(), inputs)


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
    write_text(path, buffer.getvalue())
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
    write_text(path, json.dumps(document, indent=2) + "\n")
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
        write_text(path, buffer.getvalue())
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
        write_text(path, json.dumps(document, indent=1, allow_nan=False) + "\n")
    else:
        raise ExportError(f"{path}: gate statistics are written as .csv or .json")
    return path


# -- heatmap grid --------------------------------------------------------------------------
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
