"""Tables: per-frame metrics and gate/trace statistics as CSV or JSON.

Numbering counts from 0: metrics' ``frame`` column, gate statistics' ``step`` and
``predicts_frame``; step t reads frame t and predicts frame t + 1.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mimviewer.atomic import write_text
from mimviewer.export.writers import ExportError
from mimviewer.metrics import summary
from mimviewer.trace import KIND_MEASURES, STAT_NAMES, Trace


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
