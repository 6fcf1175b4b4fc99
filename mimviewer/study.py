"""The gate-saturation study (docs/saturation.md): do forget gates saturate, and what do MIM's extras do?

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


@dataclass
class StudyResult:
    """Per-step curves of one model over a held-out set (step t reads frame t, predicts t+1)."""

    name: str
    pre: int
    aft: int
    saturated: dict[str, np.ndarray]  # "L{layer} {gate}" -> (steps,) fraction saturated (low + high)
    saturated_low: dict[str, np.ndarray]
    saturated_high: dict[str, np.ndarray]
    signals: dict[str, np.ndarray]  # "L{layer} {name}" -> (steps,) RMS of the raw tensor
    trace: Trace

    def summary(self) -> dict[str, dict[str, float]]:
        """Means over the context steps and over the prediction steps, per curve."""
        context, horizon = slice(0, self.pre - 1), slice(self.pre - 1, None)
        out: dict[str, dict[str, float]] = {}
        for label, curve in self.saturated.items():
            out[f"{label} saturated"] = {
                "context": float(curve[context].mean()),
                "prediction": float(curve[horizon].mean()),
                "prediction_low": float(self.saturated_low[label][horizon].mean()),
                "prediction_high": float(self.saturated_high[label][horizon].mean()),
            }
        for label, curve in self.signals.items():
            out[f"{label} rms"] = {
                "context": float(curve[context].mean()),
                "prediction": float(curve[horizon].mean()),
            }
        return out


def study_model(
    name: str, loaded: LoadedCheckpoint, frames: np.ndarray, *, lo: float = 0.1, hi: float = 0.9
) -> StudyResult:
    """Roll ``frames`` (N, T, C, H, W) out with every probe and reduce to per-step curves."""
    model = loaded.model
    cfg = loaded.config
    keep = {*FORGET_GATES, *MIM_SIGNALS}
    spec = ProbeSpec(lo=lo, hi=hi, keep_raw=True, quantities=frozenset(keep))
    trace = rollout(model, frames, probes=spec, device="cpu").trace
    saturated, low, high, signals = {}, {}, {}, {}
    for layer in range(cfg.num_layers):
        for gate in FORGET_GATES:
            if trace.has(layer, gate):
                label = f"L{layer} {gate}"
                saturated[label] = trace.stat(layer, gate, "frac_saturated").mean(1)
                low[label] = trace.stat(layer, gate, "frac_low").mean(1)
                high[label] = trace.stat(layer, gate, "frac_high").mean(1)
        for signal in MIM_SIGNALS:
            if trace.has(layer, signal):
                raw = trace.raw[f"{layer}/{signal}"]  # (steps, B, C, H', W')
                signals[f"L{layer} {signal}"] = np.sqrt((raw.astype(np.float64) ** 2).mean(axis=(1, 2, 3, 4)))
    return StudyResult(name, cfg.pre, cfg.aft, saturated, low, high, signals, trace)


# -- figures ------------------------------------------------------------------------------
def _text(image: np.ndarray, text: str, x: int, y: int, scale: float = 0.45, colour=(0, 0, 0)) -> None:
    cv2.putText(image, text, (x, y), FONT, scale, colour, 1, cv2.LINE_AA)


def plot_curves(
    curves: dict[str, np.ndarray],
    *,
    title: str,
    ylabel: str,
    pre: int,
    y_range: tuple[float, float] | None = None,
    size: tuple[int, int] = (720, 400),
) -> np.ndarray:
    """Line plot of per-step curves as RGB uint8; the context/prediction boundary is marked.

    The x axis is the frame each step predicts (step t -> frame t + 1, 1-based frames
    2 .. pre + aft), so the shaded part is the prediction horizon.
    """
    width, height = size
    left, right, top, bottom = 64, 190, 34, 46
    image = np.full((height, width, 3), 255, np.uint8)
    steps = len(next(iter(curves.values())))
    values = np.concatenate(list(curves.values()))
    y0, y1 = y_range if y_range is not None else (0.0, float(values.max()) * 1.05 or 1.0)
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(t: float, v: float) -> tuple[int, int]:
        x = left + plot_w * t / max(1, steps - 1)
        y = top + plot_h * (1 - (v - y0) / (y1 - y0))
        return round(x), round(y)

    boundary = px(pre - 1, y0)[0]  # step pre-1 predicts the first future frame
    image[top : top + plot_h, boundary : left + plot_w] = (255, 240, 220)
    for k in range(5):
        v = y0 + (y1 - y0) * k / 4
        _, y = px(0, v)
        cv2.line(image, (left, y), (left + plot_w, y), (225, 225, 225), 1)
        _text(image, f"{v:.2g}", 6, y + 4, 0.4)
    for t in range(0, steps, 2):
        x, _ = px(t, y0)
        _text(image, str(t + 2), x - 6, top + plot_h + 16, 0.4)
    cv2.rectangle(image, (left, top), (left + plot_w, top + plot_h), (0, 0, 0), 1)
    _text(image, title, left, 22, 0.5)
    _text(image, "predicted frame (shaded: beyond the context)", left, height - 10, 0.4)
    _text(image, ylabel, 6, 22, 0.4)
    for k, (label, curve) in enumerate(curves.items()):
        colour = PALETTE[k % len(PALETTE)]
        points = np.array([px(t, float(v)) for t, v in enumerate(curve)], np.int32)
        cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)
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
            result.saturated,
            title=f"{result.name}: forget gates outside [{lo:g}, {hi:g}]",
            ylabel="fraction",
            pre=result.pre,
            y_range=(0.0, 1.0),
        )
        written[f"{result.name}_saturation"] = write_png(out_dir / f"{result.name}_saturation.png", figure)
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
    path.write_text(json.dumps(numbers, indent=2, sort_keys=True) + "\n")
    written["numbers"] = path
    tables = out_dir / "saturation_tables.md"
    tables.write_text(summary_markdown(results))
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
            f"prediction steps (split into low < {lo:g} and high > {hi:g}):",
            "",
            "| layer, gate | context | prediction | prediction low | prediction high |",
            "| --- | --- | --- | --- | --- |",
        ]
        for label in result.saturated:
            s = summary[f"{label} saturated"]
            lines.append(
                f"| {label} | {s['context']:.3f} | {s['prediction']:.3f} | {s['prediction_low']:.3f} | "
                f"{s['prediction_high']:.3f} |"
            )
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
