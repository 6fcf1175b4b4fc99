"""Run a checkpoint over every sequence of a data set: per-sequence scores and gate statistics.

One row per sequence: the data set's identity (path, bytes, a hash of its first MiB and
metadata; or generator, count and seed), the checkpoint's identity, the image scores of
:func:`mimviewer.metrics.frame_metrics` averaged over the predicted frames (plus radar skill
for radar checkpoints), and per layer and gate the mean value and the fractions saturated
low (< lo) and high (> hi), averaged over the context steps and over the prediction steps,
with the dH stillness (fraction of |H_t - H_(t-1)| < eps) the same way. The forget gates
(:data:`CURVE_GATES`) and dH also get one column per step, so that ``mimviewer study`` can
draw the saturation curves of a whole test set from the file.

Sequences are cut into chunks of ``batch_size``; a chunk is the unit of work, of resuming
and of sharding. Each finished chunk is written atomically into ``OUT.parts/`` and skipped
on a rerun; the final file is assembled in sequence order, so a resumed run, a one-process
run and a ``torchrun`` run over N ranks (chunk c on rank c mod N, the same batches
everywhere) write the same file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mimviewer.errors import DataError, MimviewerError, ShapeError
from mimviewer.trace import ProbeSpec, Trace, TraceRecorder, split_key

FORMAT = "mimviewer-sweep/1"  # bump when the columns' meaning changes (old parts are then refused)
GATE_SUFFIXES = frozenset({"i", "f", "o", "i'", "f'", "r", "u"})  # sigmoid gates, values in [0, 1]
CURVE_GATES: tuple[str, ...] = ("f", "f'", "S.f", "N.f")  # forget gates: one column per step
GENERATORS: tuple[str, ...] = ("digits", "storms")
HASHED_BYTES = 2**20  # identity hash: the first MiB of the data (plus its size and metadata)
OUTPUT_SUFFIXES: tuple[str, ...] = (".csv", ".parquet")
PER_SEQUENCE_METRICS: tuple[str, ...] = ("mse", "mae", "mse_frame", "psnr", "ssim")


def is_gate(name: str) -> bool:
    """Whether a quantity is a sigmoid gate (saturation is a gate measure, DESIGN.md)."""
    return name.split(".")[-1] in GATE_SUFFIXES


# -- data sets -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    """Sequences by index, and what identifies the data set in the results."""

    name: str  # path or "digits:100"
    count: int
    identity: dict[str, Any]  # dataset, dataset_bytes, dataset_hash
    read: Callable[[int], np.ndarray]  # sequence index -> (T, C, H, W) float32 in [0, 1]


def _hash_file_head(path: Path, digest: Any) -> None:
    with open(path, "rb") as f:
        digest.update(f.read(HASHED_BYTES))


def _file_identity(path: Path) -> dict[str, Any]:
    """Path, size in bytes and sha256 of (first MiB, size, names): cheap, and changes when the data do."""
    digest = hashlib.sha256()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in files)
        for p in files:
            digest.update(f"{p.relative_to(path)}\0{p.stat().st_size}\n".encode())
        if files:
            _hash_file_head(files[0], digest)
    else:
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\n".encode())
        _hash_file_head(path, digest)
    return {"dataset": str(path), "dataset_bytes": size, "dataset_hash": digest.hexdigest()[:16]}


def generator_seed(seed: int, index: int) -> int:
    """Seed of sequence ``index``: each sequence is drawn on its own, so any rank can draw any one."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def open_dataset(
    spec: str, *, channels: int, size: tuple[int, int], length: int, seed: int = 0, fit: str = "resize"
) -> Dataset:
    """``spec``: a file or folder (any reader's input; arrays with an N axis give N sequences;
    a folder that is no sequence itself gives one per entry), or ``digits:COUNT`` / ``storms:COUNT``.
    Frames of another size or channel count are fitted as everywhere (:func:`mimviewer.data.adapt`)."""
    match = re.fullmatch(r"(digits|storms):(\d+)", spec)
    if match and not Path(spec).exists():
        kind, count = match.group(1), int(match.group(2))
        if count < 1:
            raise DataError(f"{spec}: a generator needs a count of at least 1")
        if size[0] != size[1]:
            raise ShapeError(f"the {kind} generator draws square frames; the model wants {size[0]}x{size[1]}")
        from mimviewer.train import synthetic_frames

        description = f"{kind}:{count} seed {seed} {size[0]}x{size[1]} {length} frames"
        identity = {
            "dataset": description,
            "dataset_bytes": 0,
            "dataset_hash": hashlib.sha256(description.encode()).hexdigest()[:16],
        }

        def draw(index: int) -> np.ndarray:
            frames = synthetic_frames(kind, 1, length, size[0], generator_seed(seed, index))[0]
            return frames if channels == 1 else np.repeat(frames, channels, axis=1)

        return Dataset(spec, count, identity, draw)
    if match is None and re.fullmatch(r"(digits|storms)(:.*)?", spec) and not Path(spec).exists():
        raise DataError(f"{spec}: a generator is named KIND:COUNT, e.g. digits:100 ({', '.join(GENERATORS)})")
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    sources = _sequence_sources(path)
    identity = _file_identity(path)

    def read(index: int) -> np.ndarray:
        from mimviewer.data import adapt, open_sequence

        source, options = sources[index]
        sequence = open_sequence(source, **options)
        if len(sequence) < length:
            where = f" (sequence {options['sequence']})" if "sequence" in options else ""
            raise ShapeError(f"{source}{where}: {len(sequence)} frames, the sweep needs {length}")
        return adapt(sequence, (channels, *size), fit=fit, stop=length)[1]

    return Dataset(str(path), len(sources), identity, read)


def _sequence_sources(path: Path) -> list[tuple[Path, dict[str, int]]]:
    """(file, open_sequence options) of every sequence under ``path``."""
    from mimviewer.data import open_sequence

    try:
        first = open_sequence(path)
    except DataError:
        if not path.is_dir():
            raise
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        sources = [s for entry in entries for s in _sequence_sources(entry)]
        if not sources:
            raise DataError(f"{path}: no sequences in this folder") from None
        return sources
    layout = first.meta.extra.get("layout", "")
    shape = first.meta.extra.get("shape", "")
    if "N" in layout and shape:
        count = int(shape.split("x")[layout.index("N")])
        return [(path, {"sequence": i}) for i in range(count)]
    return [(path, {})]


# -- statistics of one batch ---------------------------------------------------------------
class StepTrackingRecorder(TraceRecorder):
    """A TraceRecorder that also notes which steps recorded each key (MIM-N has no step 0,
    E3D-LSTM rests between window rebuilds): those steps are NaN in the table, never 0."""

    def __init__(self, spec: ProbeSpec, steps: int):
        super().__init__(spec, steps)
        self.recorded: dict[str, set[int]] = {}

    def record(self, layer: int, name: str, value: torch.Tensor) -> None:
        for recorded in (name, "dH") if name == "H" else (name,):
            if self.spec.wants(layer, recorded):
                self.recorded.setdefault(f"{layer}/{recorded}", set()).add(self.t)
        super().record(layer, name, value)


def probe_spec(model: torch.nn.Module, lo: float, hi: float, eps: float) -> ProbeSpec:
    """Every gate of every layer, plus dH."""
    names = {q for layer in range(model.config.num_layers) for q in model.quantities(layer) if is_gate(q)}
    return ProbeSpec(quantities=frozenset({*names, "dH"}), lo=lo, hi=hi, eps=eps)


def _steps_mean(values: np.ndarray, steps: slice) -> float:
    part = values[steps]
    part = part[~np.isnan(part)]
    return float(part.mean()) if part.size else float("nan")


def gate_columns(trace: Trace, recorded: Mapping[str, Set[int]], index: int) -> dict[str, float]:
    """Columns of sequence ``index`` of the batch: ``"{layer}/{gate}/{stat}/{context|prediction|tNN}"``."""
    steps = trace.steps
    context, horizon = slice(0, trace.pre - 1), slice(trace.pre - 1, None)
    columns: dict[str, float] = {}
    for k in trace.stats:
        layer, name = split_key(k)
        done = np.zeros(steps, bool)
        done[sorted(recorded.get(k, ()))] = True
        stats = ("frac_still",) if name == "dH" else ("mean", "frac_low", "frac_high")
        for stat in stats:
            values = np.where(done, trace.stat(layer, name, stat)[:, index].astype(np.float64), np.nan)
            columns[f"{k}/{stat}/context"] = _steps_mean(values, context)
            columns[f"{k}/{stat}/prediction"] = _steps_mean(values, horizon)
            if (name in CURVE_GATES and stat != "mean") or name == "dH":
                for t in range(steps):
                    columns[f"{k}/{stat}/t{t:02d}"] = float(values[t])
    return columns


# -- the run -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepOptions:
    batch_size: int = 8
    lo: float = 0.1
    hi: float = 0.9
    eps: float = 1e-3
    fast: bool = False  # bf16 autocast (inference.rollout's amp)
    cuda_graph: bool = False  # replay each batch shape's rollout as one CUDA graph


class Progress:
    """One stderr line: sequences done, rate, time left (a new line per update when not a terminal)."""

    def __init__(self, total: int, label: str, stream=None):
        self.total, self.label = total, label
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.monotonic()
        self.done = 0
        self.computed = 0

    def update(self, sequences: int, *, computed: bool) -> None:
        """``sequences`` more are done (under torchrun rank 0 counts its own chunks times the ranks)."""
        sequences = min(sequences, self.total - self.done)
        self.done += sequences
        self.computed += sequences if computed else 0
        elapsed = time.monotonic() - self.start
        rate = self.computed / elapsed if elapsed > 0 and self.computed else 0.0
        left = max(0.0, (self.total - self.done) / rate) if rate else float("nan")
        width = 24
        filled = int(width * self.done / max(1, self.total))
        text = (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} sequences"
            f", {rate:.1f}/s" + (f", {left:.0f} s left" if math.isfinite(left) else "")
        )
        tty = getattr(self.stream, "isatty", lambda: False)()
        self.stream.write(("\r" + text) if tty else text + "\n")
        if tty and self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()


def parts_dir(output: Path) -> Path:
    return output.with_name(output.name + ".parts")


def _write_atomic(path: Path, write: Callable[[Path], None], inputs: Iterable[Any] = ()) -> None:
    """Through :func:`mimviewer.atomic.atomic_path`: a kill leaves the old state or the new."""
    from mimviewer.atomic import atomic_path

    with atomic_path(path, inputs) as tmp:
        write(tmp)


def prepare_parts(output: Path, manifest: dict[str, Any]) -> str | None:
    """Create ``OUT.parts/`` with its manifest, or check the one there; returns a problem or None."""
    parts = parts_dir(output)
    path = parts / "manifest.json"
    if path.is_file():
        try:
            found = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            return f"{path}: unreadable ({exc}); delete {parts} to start over"
        if found != manifest:
            changed = sorted(k for k in {*found, *manifest} if found.get(k) != manifest.get(k))
            return (
                f"{parts} holds a sweep with other settings ({', '.join(changed)}); "
                f"delete it or write to another file"
            )
        return None
    if parts.exists() and any(parts.iterdir()):
        return f"{parts} exists and is not a sweep's parts folder; move it away"
    parts.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True)))
    return None


def chunk_path(output: Path, chunk: int) -> Path:
    return parts_dir(output) / f"chunk-{chunk:06d}.json"


def read_chunk(output: Path, chunk: int) -> list[dict[str, Any]] | None:
    """The rows of a finished chunk, or None when it is not there (a torn file never is: atomic)."""
    path = chunk_path(output, chunk)
    if not path.is_file():
        return None
    return json.loads(path.read_text())["rows"]


def run_chunk(
    loaded: Any,
    dataset: Dataset,
    indices: range,
    options: SweepOptions,
    device: torch.device,
    identity: dict[str, Any],
    notes: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Roll one batch out with every gate probe and return its rows (speed notes go to ``notes``)."""
    from mimviewer.inference import rollout
    from mimviewer.memory import estimate
    from mimviewer.metrics import frame_metrics, summary

    cfg = loaded.config
    pre, aft = cfg.pre, cfg.aft
    frames = np.stack([dataset.read(i) for i in indices])  # (n, pre+aft, C, H, W)
    spec = probe_spec(loaded.model, options.lo, options.hi, options.eps)
    speed = dict(device=device, amp=options.fast)
    if options.cuda_graph:
        # a graph replays a plain recorder; which steps record what comes from the cached
        # shape-only run instead (a step a module skips is NaN in the table, never 0)
        result = rollout(loaded.model, frames[:, :pre], pre, aft, probes=spec, cuda_graph=True, **speed)
        recorded = estimate(loaded.model, spec, 1, pre, aft).recorded_steps
    else:
        recorder = StepTrackingRecorder(spec, pre + aft - 1)
        result = rollout(loaded.model, frames[:, :pre], pre, aft, recorder=recorder, **speed)
        recorded = recorder.recorded
    if notes is not None:
        notes.extend(note for note in result.notes if note not in notes)
    units = cfg.units if cfg.units in ("dBZ", "mm/h") else "intensity"
    rows = []
    for k, index in enumerate(indices):
        scores = summary(frame_metrics(frames[k, pre:], result.prediction[k], units=units))
        metrics = {name: value for name, value in scores.items() if name not in ("mae_frame",)}
        row = {"sequence": index, **identity, "pre": pre, "aft": aft}
        row.update({"lo": options.lo, "hi": options.hi, "eps": options.eps, **metrics})
        row.update(gate_columns(result.trace, recorded, k))
        rows.append(row)
    return rows


def chunks_of(count: int, batch_size: int) -> list[range]:
    return [range(start, min(count, start + batch_size)) for start in range(0, count, batch_size)]


def sweep(
    loaded: Any,
    dataset: Dataset,
    output: Path,
    options: SweepOptions,
    *,
    device: torch.device,
    checkpoint_identity: dict[str, Any],
    rank: int = 0,
    world: int = 1,
    progress: Progress | None = None,
    notes: list[str] | None = None,
) -> dict[int, list[dict[str, Any]]]:
    """This rank's chunks (chunk c belongs to rank c mod world): read from OUT.parts/ when done
    before, else computed and written there. Returns chunk index -> rows."""
    identity = {**dataset.identity, **checkpoint_identity}
    mine: dict[int, list[dict[str, Any]]] = {}
    for chunk, indices in enumerate(chunks_of(dataset.count, options.batch_size)):
        if chunk % world != rank:
            continue
        rows = read_chunk(output, chunk)
        computed = rows is None
        if rows is None:
            rows = run_chunk(loaded, dataset, indices, options, device, identity, notes)
            text = json.dumps({"first": indices.start, "rows": rows}, allow_nan=True)
            _write_atomic(chunk_path(output, chunk), lambda tmp, text=text: tmp.write_text(text))
        mine[chunk] = rows
        if progress is not None:
            progress.update(len(indices) * world, computed=computed)
    return mine


def manifest(
    dataset: Dataset,
    checkpoint_identity: dict[str, Any],
    options: SweepOptions,
    pre: int,
    aft: int,
    fit: str = "resize",
) -> dict[str, Any]:
    """What must match for finished chunks to be reused."""
    return {
        "format": FORMAT,
        **dataset.identity,
        **checkpoint_identity,
        "count": dataset.count,
        "pre": pre,
        "aft": aft,
        "batch_size": options.batch_size,
        "lo": options.lo,
        "hi": options.hi,
        "eps": options.eps,
        "fast": options.fast,
        "fit": fit,
    }


def checkpoint_identity(path: Path) -> dict[str, Any]:
    identity = _file_identity(path)
    return {"checkpoint": identity["dataset"], "checkpoint_hash": identity["dataset_hash"]}


# -- the table -----------------------------------------------------------------------------
def assemble(chunks: Iterable[dict[int, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    merged: dict[int, list[dict[str, Any]]] = {}
    for part in chunks:
        merged.update(part)
    return [row for chunk in sorted(merged) for row in merged[chunk]]


def write_table(
    path: Path, rows: list[dict[str, Any]], metadata: dict[str, Any], inputs: Iterable[Any] = ()
) -> None:
    """CSV (floats written exactly, ``repr``) or Parquet (pyarrow), atomically; columns in row order."""
    if not rows:
        raise DataError(f"{path}: nothing to write (no sequences)")
    columns = list(rows[0])
    suffix = path.suffix.lower()
    if suffix == ".csv":

        def write_csv(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(columns)
                for row in rows:
                    writer.writerow(
                        [repr(v) if isinstance(v, float) else v for v in (row[c] for c in columns)]
                    )

        _write_atomic(path, write_csv, inputs)
    elif suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise MimviewerError(
                f"{path}: writing Parquet needs pyarrow (pip install pyarrow); or use .csv"
            ) from None
        arrays = {}
        for c in columns:
            values = [row[c] for row in rows]
            if isinstance(values[0], str):
                arrays[c] = pa.array(values, pa.string())
            elif isinstance(values[0], bool) or not isinstance(values[0], int):
                arrays[c] = pa.array([float(v) for v in values], pa.float64())
            else:
                arrays[c] = pa.array(values, pa.int64())
        table = pa.table(arrays).replace_schema_metadata(
            {"mimviewer.sweep": json.dumps(metadata, sort_keys=True)}
        )
        _write_atomic(path, lambda tmp: pq.write_table(table, tmp), inputs)
    else:
        raise DataError(f"{path}: results are written as {' or '.join(OUTPUT_SUFFIXES)}")


def read_table(path: str | Path) -> dict[str, np.ndarray]:
    """A sweep's output as columns (numbers as float64 / int64 arrays, text as object arrays)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise MimviewerError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError on damaged files
            raise DataError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
        return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    if suffix != ".csv":
        raise DataError(f"{path}: a sweep's results are .csv or .parquet")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}: empty file") from None
        body = list(reader)
    columns: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        values = [line[j] if j < len(line) else "" for line in body]
        try:
            columns[name] = np.array([float(v) for v in values], np.float64)
        except ValueError:
            columns[name] = np.array(values, object)
    if "sequence" not in columns:
        raise DataError(f"{path}: not a sweep's output (no 'sequence' column)")
    return columns


def remove_parts(output: Path) -> None:
    """The parts folder is ours (created by the sweep): gone once the final file is written."""
    shutil.rmtree(parts_dir(output), ignore_errors=True)
