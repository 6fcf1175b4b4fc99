"""The gate-saturation study (docs/saturation.md): do forget gates saturate, and what do MIM's extras do?

Over a whole test set: ``mimviewer sweep`` writes per-sequence gate statistics (a table),
and :func:`study_sweep` turns that table into the same curves and numbers (means over every
sequence), without keeping any raw tensor.

The MIM paper (Wang et al. 2019) motivates its memories by observing that most forget
gates of a trained PredRNN saturate on precipitation data. Here the same statement is
measured with the app's own probes: a held-out set is rolled out with a
:class:`~mimviewer.trace.ProbeSpec`, and per layer and step we take
``Trace.stat(layer, gate, "frac_saturated")`` (the fraction of gate values below ``lo``
or above ``hi``), split into low and high, averaged over the sequences. For MIM's
non-stationary module (D, Dn, N) and stationary module (S, T) we report the RMS of the raw
tensors per step. Figures are drawn with numpy/OpenCV (curves) and
:func:`mimviewer.export.render_heatmap_grid` (maps), so they come from the same code as
the window and the exports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mimviewer.atomic import write_text
from mimviewer.checkpoints import LoadedCheckpoint
from mimviewer.inference import rollout
from mimviewer.trace import ProbeSpec, Trace

FORGET_GATES: tuple[str, ...] = ("f", "f'", "S.f", "N.f")  # every forget gate a layer may have
MIM_SIGNALS: tuple[str, ...] = ("D", "Dn", "N", "S", "T")  # MIM-N input/output/memory, MIM-S memory/output

# Curve colours (RGB), distinguishable and readable on white.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
FONT = cv2.FONT_HERSHEY_SIMPLEX
HISTOGRAM_BINS = 20  # gate values in [0, 1], bins of 0.05
ACTIVE_RAIN_MM_H = 0.5  # radar: a grid cell is active where its patch rains at least this much
ACTIVE_INTENSITY = 0.1  # video: ... where its patch holds ink brighter than this


@dataclass
class StudyResult:
    """Per-step curves of one model over a held-out set (step t reads frame t, predicts t+1)."""

    name: str
    pre: int
    aft: int
    saturated: dict[str, np.ndarray]  # "L{layer} {gate}" -> (steps,) fraction saturated (low + high)
    saturated_low: dict[str, np.ndarray]
    saturated_high: dict[str, np.ndarray]
    saturated_active: dict[str, np.ndarray]  # the same, only where there is something (rain / ink)
    saturated_active_low: dict[str, np.ndarray]  # ... below lo there
    gate_mean: dict[str, np.ndarray]  # "L{layer} {gate}" -> (steps,) mean gate value
    histograms: dict[str, np.ndarray]  # "L{layer} {gate}" -> (HISTOGRAM_BINS,) share of values per bin
    histograms_active: dict[str, np.ndarray]  # the same, only where there is something
    active_share: float  # fraction of grid cells that are active over the prediction steps
    signals: dict[str, np.ndarray]  # "L{layer} {name}" -> (steps,) RMS of the raw tensor
    trace: Trace

    def summary(self) -> dict[str, dict[str, float]]:
        """Means over the context steps and over the prediction steps, per curve."""
        context, horizon = slice(0, self.pre - 1), slice(self.pre - 1, None)
        out: dict[str, dict[str, float]] = {}
        for label, curve in self.saturated.items():
            out[f"{label} saturated"] = {
                "mean_gate_prediction": float(np.nanmean(self.gate_mean[label][horizon])),
                "context": float(np.nanmean(curve[context])),
                "prediction": float(np.nanmean(curve[horizon])),
                "prediction_low": float(np.nanmean(self.saturated_low[label][horizon])),
                "prediction_high": float(np.nanmean(self.saturated_high[label][horizon])),
                "prediction_active": float(np.nanmean(self.saturated_active[label][horizon])),
                "prediction_active_low": float(np.nanmean(self.saturated_active_low[label][horizon])),
            }
        for label, curve in self.signals.items():
            out[f"{label} rms"] = {
                "context": float(np.nanmean(curve[context])),
                "prediction": float(np.nanmean(curve[horizon])),
            }
        out["active cells"] = {"prediction": self.active_share}
        return out


def active_cells(frames: np.ndarray, patch: int, threshold: float, steps: int) -> np.ndarray:
    """(steps, N, H', W') bool: grid cells whose patch holds a value >= threshold in the frame a
    step reads (t) or predicts (t + 1), in the ground truth: where the weather (or the ink) is."""
    n, t, c, h, w = frames.shape
    patches = frames.reshape(n, t, c, h // patch, patch, w // patch, patch).max(axis=(2, 4, 6))
    present = patches >= threshold  # (N, T, H', W')
    return np.moveaxis(present[:, :steps] | present[:, 1 : steps + 1], 1, 0)


def _raw(trace: Trace, layer: int, name: str) -> np.ndarray:
    """Raw values (steps, N, C, H', W') as float64, indexed by step; NaN where the step did not
    compute the quantity (``trace.valid``: MIM-N at step 0, E3D-LSTM's resting steps)."""
    raw = trace.raw[f"{layer}/{name}"].astype(np.float64)
    raw[~trace.valid_steps(layer, name)] = np.nan
    return raw


def study_model(
    name: str,
    loaded: LoadedCheckpoint,
    frames: np.ndarray,
    *,
    lo: float = 0.1,
    hi: float = 0.9,
    aft: int | None = None,
) -> StudyResult:
    """Roll ``frames`` (N, T, C, H, W) out with every probe and reduce to per-step curves.

    ``aft`` longer than the trained horizon runs on autoregressively (``frames`` must then
    hold ``pre + aft`` frames of truth for the active cells)."""
    model = loaded.model
    cfg = loaded.config
    aft = cfg.aft if aft is None else aft
    keep = {*FORGET_GATES, *MIM_SIGNALS}
    spec = ProbeSpec(lo=lo, hi=hi, keep_raw=True, quantities=frozenset(keep))
    trace = rollout(model, frames, cfg.pre, aft, probes=spec, device="cpu").trace
    steps = cfg.pre + aft - 1
    if cfg.units in ("dBZ", "mm/h"):
        from mimviewer.data.units import rain_rate_to_unit

        threshold = float(rain_rate_to_unit(ACTIVE_RAIN_MM_H))
    else:
        threshold = ACTIVE_INTENSITY
    active = active_cells(frames, cfg.patch_size, threshold, steps)[:, :, None]  # (steps, N, 1, H', W')
    saturated, low, high, active_sat, active_low, means, histograms, histograms_active, signals = (
        {} for _ in range(9)
    )
    for layer in range(cfg.num_layers):
        for gate in FORGET_GATES:
            if trace.has(layer, gate):
                label = f"L{layer} {gate}"
                raw = _raw(trace, layer, gate)  # (steps, N, C, H', W'), NaN where not computed
                missing = ~trace.valid_steps(layer, gate)
                saturated[label] = np.where(
                    missing, np.nan, trace.stat(layer, gate, "frac_saturated").mean(1)
                )
                low[label] = np.where(missing, np.nan, trace.stat(layer, gate, "frac_low").mean(1))
                high[label] = np.where(missing, np.nan, trace.stat(layer, gate, "frac_high").mean(1))
                means[label] = np.where(missing, np.nan, trace.stat(layer, gate, "mean").mean(1))
                mask = np.broadcast_to(active, raw.shape) & ~np.isnan(raw)
                outside = (raw < lo) | (raw > hi)
                cells = mask.sum(axis=(1, 2, 3, 4))
                with np.errstate(invalid="ignore"):
                    active_sat[label] = (outside & mask).sum(axis=(1, 2, 3, 4)) / cells
                    active_low[label] = ((raw < lo) & mask).sum(axis=(1, 2, 3, 4)) / cells
                horizon = slice(cfg.pre - 1, None)  # prediction steps only
                counts, _ = np.histogram(
                    raw[horizon][~np.isnan(raw[horizon])], bins=HISTOGRAM_BINS, range=(0, 1)
                )
                histograms[label] = counts / max(1, counts.sum())
                counts, _ = np.histogram(raw[horizon][mask[horizon]], bins=HISTOGRAM_BINS, range=(0.0, 1.0))
                histograms_active[label] = counts / max(1, counts.sum())
        for signal in MIM_SIGNALS:
            if trace.has(layer, signal):
                raw = _raw(trace, layer, signal)
                signals[f"L{layer} {signal}"] = np.sqrt((raw**2).mean(axis=(1, 2, 3, 4)))
    share = float(active[cfg.pre - 1 :].mean())
    return StudyResult(
        name,
        cfg.pre,
        aft,
        saturated,
        low,
        high,
        active_sat,
        active_low,
        means,
        histograms,
        histograms_active,
        share,
        signals,
        trace,
    )


# -- figures ------------------------------------------------------------------------------
def _text(image: np.ndarray, text: str, x: int, y: int, scale: float = 0.45, colour=(0, 0, 0)) -> None:
    cv2.putText(image, text, (x, y), FONT, scale, colour, 1, cv2.LINE_AA)


def plot_curves(
    curves: dict[str, np.ndarray],
    *,
    title: str,
    ylabel: str,
    pre: int | None,
    y_range: tuple[float, float] | None = None,
    size: tuple[int, int] = (720, 400),
    x_labels: list[str] | None = None,
    xlabel: str = "predicted frame (shaded: beyond the context)",
) -> np.ndarray:
    """Line plot of curves as RGB uint8.

    By default the x axis is the frame each step predicts (step t -> frame t + 1; frames count
    from 0 as everywhere in mimviewer, so 1 .. pre + aft - 1) and the prediction horizon is
    shaded; ``x_labels`` replaces the tick labels (``pre=None``: no shading).
    """
    width, height = size
    left, right, top, bottom = 64, 190, 34, 46
    image = np.full((height, width, 3), 255, np.uint8)
    steps = len(next(iter(curves.values())))
    values = np.concatenate(list(curves.values()))
    y0, y1 = y_range if y_range is not None else (0.0, float(np.nanmax(values)) * 1.05 or 1.0)
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(t: float, v: float) -> tuple[int, int]:
        x = left + plot_w * t / max(1, steps - 1)
        y = top + plot_h * (1 - (v - y0) / (y1 - y0))
        return round(x), round(y)

    if pre is not None:
        boundary = px(pre - 1, y0)[0]  # step pre-1 predicts the first future frame
        image[top : top + plot_h, boundary : left + plot_w] = (255, 240, 220)
    for k in range(5):
        v = y0 + (y1 - y0) * k / 4
        _, y = px(0, v)
        cv2.line(image, (left, y), (left + plot_w, y), (225, 225, 225), 1)
        _text(image, f"{v:.2g}", 6, y + 4, 0.4)
    labels = x_labels if x_labels is not None else [str(t + 1) for t in range(steps)]
    for t in range(0, steps, 2):
        x, _ = px(t, y0)
        _text(image, labels[t], x - 6, top + plot_h + 16, 0.4)
    cv2.rectangle(image, (left, top), (left + plot_w, top + plot_h), (0, 0, 0), 1)
    _text(image, title, left, 22, 0.5)
    _text(image, xlabel, left, height - 10, 0.4)
    _text(image, ylabel, 6, 22, 0.4)
    for k, (label, curve) in enumerate(curves.items()):
        colour = PALETTE[k % len(PALETTE)]
        points = np.array([px(t, float(v)) for t, v in enumerate(curve) if np.isfinite(v)], np.int32)
        cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)  # undefined steps are left out
        y = top + 12 + 18 * k
        cv2.line(image, (left + plot_w + 10, y - 4), (left + plot_w + 30, y - 4), colour, 2)
        _text(image, label, left + plot_w + 36, y, 0.42)
    return image


def write_study(
    results: list[StudyResult], out_dir: str | Path, *, heatmap_step: int | None = None
) -> dict[str, Path]:
    """Write every figure (PNG) and the numbers (saturation.json) into ``out_dir``."""
    from mimviewer.export import render_heatmap_grid, write_png

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for result in results:
        lo, hi = result.trace.spec.lo, result.trace.spec.hi
        figure = plot_curves(
            result.saturated | {f"{k} (active)": v for k, v in result.saturated_active.items()},
            title=f"{result.name}: forget gates outside [{lo:g}, {hi:g}] (all cells; active cells)",
            ylabel="fraction",
            pre=result.pre,
            y_range=(0.0, 1.0),
        )
        written[f"{result.name}_saturation"] = write_png(out_dir / f"{result.name}_saturation.png", figure)
        centres = [f"{(k + 0.5) / HISTOGRAM_BINS:.2f}" for k in range(HISTOGRAM_BINS)]
        figure = plot_curves(
            result.histograms | {f"{k} (active)": v for k, v in result.histograms_active.items()},
            title=f"{result.name}: forget-gate values over the prediction steps",
            ylabel="share",
            pre=None,
            x_labels=centres,
            xlabel="gate value (bin centre)",
        )
        written[f"{result.name}_gate_values"] = write_png(out_dir / f"{result.name}_gate_values.png", figure)
        if result.signals:
            figure = plot_curves(
                result.signals,
                title=f"{result.name}: RMS of MIM-N and MIM-S signals",
                ylabel="RMS",
                pre=result.pre,
            )
            written[f"{result.name}_signals"] = write_png(out_dir / f"{result.name}_signals.png", figure)
        step = result.pre + result.aft // 2 - 1 if heatmap_step is None else heatmap_step
        present = result.trace.quantities()
        gates = [q for q in FORGET_GATES if q in present]
        grid = render_heatmap_grid(result.trace, step, gates, "saturated")
        written[f"{result.name}_saturated_maps"] = write_png(
            out_dir / f"{result.name}_saturated_maps.png", grid
        )
        signals = [q for q in MIM_SIGNALS if q in present]
        if signals:
            grid = render_heatmap_grid(result.trace, step, signals, "mean")
            written[f"{result.name}_signal_maps"] = write_png(
                out_dir / f"{result.name}_signal_maps.png", grid
            )
    numbers = {r.name: r.summary() for r in results}
    path = out_dir / "saturation.json"
    write_text(path, json.dumps(numbers, indent=2, sort_keys=True) + "\n")
    written["numbers"] = path
    tables = out_dir / "saturation_tables.md"
    write_text(tables, summary_markdown(results))
    written["tables"] = tables
    return written


def summary_markdown(results: list[StudyResult]) -> str:
    """The numbers of saturation.json as markdown tables (docs/saturation.md links them)."""
    lines = [
        "# Saturation study: numbers",
        "",
        "Written by `mimviewer study`; means over the held-out sequences.",
        "",
    ]
    for result in results:
        lo, hi = result.trace.spec.lo, result.trace.spec.hi
        summary = result.summary()
        lines += [
            f"## {result.name}",
            "",
            f"Forget gates outside [{lo:g}, {hi:g}], mean fraction over the context steps and over the "
            f"prediction steps (split into low < {lo:g} and high > {hi:g}); active cells are the grid "
            f"cells with rain (or ink) in the true frame a step reads or predicts "
            f"({result.active_share:.1%} of the cells over the prediction steps):",
            "",
            "| layer, gate | mean gate (prediction) | saturated: context | prediction | "
            "prediction low | prediction high | prediction, active cells | of which low |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for label in result.saturated:
            s = summary[f"{label} saturated"]
            numbers = (
                "mean_gate_prediction",
                "context",
                "prediction",
                "prediction_low",
                "prediction_high",
                "prediction_active",
                "prediction_active_low",
            )
            lines.append(f"| {label} | " + " | ".join(f"{s[k]:.3f}" for k in numbers) + " |")
        if result.signals:
            lines += [
                "",
                "RMS of the MIM signals:",
                "",
                "| layer, signal | context | prediction |",
                "| --- | --- | --- |",
            ]
            for label in result.signals:
                s = summary[f"{label} rms"]
                lines.append(f"| {label} | {s['context']:.4f} | {s['prediction']:.4f} |")
        lines.append("")
    return "\n".join(lines)


# -- a whole test set, from a sweep's table (mimviewer sweep) --------------------------------
@dataclass
class SweepStudy:
    """Saturation of every gate over a whole data set, from ``mimviewer sweep``'s per-sequence rows."""

    name: str
    pre: int
    aft: int
    sequences: int
    lo_hi: str  # the thresholds as the sweep recorded them, e.g. "outside [0.1, 0.9]"
    saturated: dict[str, np.ndarray]  # "L{layer} {forget gate}" -> (steps,) mean over sequences
    stillness: dict[str, np.ndarray]  # "L{layer} dH" -> (steps,) fraction of |dH| < eps
    table: dict[str, dict[str, float]]  # "L{layer} {gate}" -> means over sequences and steps

    def summary(self) -> dict[str, dict[str, float]]:
        return {**self.table, "sequences": {"count": float(self.sequences)}}


def _column_mean(columns: dict[str, np.ndarray], name: str) -> float:
    values = np.asarray(columns[name], np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def study_sweep(name: str, columns: dict[str, np.ndarray]) -> SweepStudy:
    """Per-step saturation curves and per-gate means over every sequence of a sweep's table."""
    from mimviewer.sweep import CURVE_GATES

    pre, aft = int(columns["pre"][0]), int(columns["aft"][0])
    steps = pre + aft - 1
    keys = []  # (layer, gate) in column order
    for column in columns:
        parts = column.split("/")
        if len(parts) == 4 and parts[2] == "frac_low" and parts[3] == "prediction":
            keys.append((int(parts[0]), parts[1]))
    saturated, stillness, table = {}, {}, {}
    for layer, gate in keys:
        base = f"{layer}/{gate}"
        label = f"L{layer} {gate}"
        table[label] = {
            "mean_gate_prediction": _column_mean(columns, f"{base}/mean/prediction"),
            "context": _column_mean(columns, f"{base}/frac_low/context")
            + _column_mean(columns, f"{base}/frac_high/context"),
            "prediction": _column_mean(columns, f"{base}/frac_low/prediction")
            + _column_mean(columns, f"{base}/frac_high/prediction"),
            "prediction_low": _column_mean(columns, f"{base}/frac_low/prediction"),
            "prediction_high": _column_mean(columns, f"{base}/frac_high/prediction"),
        }
        if gate in CURVE_GATES:
            saturated[label] = np.array(
                [
                    _column_mean(columns, f"{base}/frac_low/t{t:02d}")
                    + _column_mean(columns, f"{base}/frac_high/t{t:02d}")
                    for t in range(steps)
                ]
            )
    layers = sorted({layer for layer, _ in keys})
    for layer in layers:
        if f"{layer}/dH/frac_still/t00" in columns:
            stillness[f"L{layer} dH"] = np.array(
                [_column_mean(columns, f"{layer}/dH/frac_still/t{t:02d}") for t in range(steps)]
            )
    lo_hi = f"outside [{columns['lo'][0]:g}, {columns['hi'][0]:g}]" if "lo" in columns else ""
    return SweepStudy(name, pre, aft, len(columns["sequence"]), lo_hi, saturated, stillness, table)


def write_sweep_study(results: list[SweepStudy], out_dir: str | Path) -> dict[str, Path]:
    """Curves (PNG), saturation.json and saturation_tables.md of sweeps over whole data sets."""
    from mimviewer.export import write_png

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for result in results:
        for kind, series, title in (
            ("saturation", result.saturated, f"forget gates saturated ({result.sequences} sequences)"),
            ("stillness", result.stillness, "share of H that stays still (|dH| < eps)"),
        ):
            curves = {k: v for k, v in series.items() if np.isfinite(v).any()}
            if curves:
                figure = plot_curves(
                    curves,
                    title=f"{result.name}: {title}",
                    ylabel="fraction",
                    pre=result.pre,
                    y_range=(0.0, 1.0),
                )
                name = f"{result.name}_{kind}"
                written[name] = write_png(out_dir / f"{name}.png", figure)
    path = out_dir / "saturation.json"
    path.write_text(json.dumps({r.name: r.summary() for r in results}, indent=2, sort_keys=True) + "\n")
    written["numbers"] = path
    lines = ["# Saturation study over whole data sets: numbers", "", "Written by `mimviewer study` from "]
    lines[-1] += "`mimviewer sweep` tables; means over every sequence.\n"
    for result in results:
        lines += [
            f"## {result.name} ({result.sequences} sequences{', ' + result.lo_hi if result.lo_hi else ''})",
            "",
            "| layer, gate | mean gate (prediction) | saturated: context | prediction | prediction low "
            "| prediction high |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        order = ("mean_gate_prediction", "context", "prediction", "prediction_low", "prediction_high")
        for label, numbers in result.table.items():
            lines.append(f"| {label} | " + " | ".join(f"{numbers[k]:.3f}" for k in order) + " |")
        lines.append("")
    tables = out_dir / "saturation_tables.md"
    tables.write_text("\n".join(lines))
    written["tables"] = tables
    return written
