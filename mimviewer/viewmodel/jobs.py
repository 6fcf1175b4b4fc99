"""The view model's long jobs as plain Python the UI runs in worker threads: inference (a
generator yielding one update per network step) and exports (a function writing one file).

Both read only state fixed when they start (a snapshot), so the main thread may go on
changing the session meanwhile; inference results come back through ``Session.accept``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mimviewer.errors import DataError, ShapeError
from mimviewer.inference import iter_rollout, pick_device
from mimviewer.limits import check_rollout
from mimviewer.memory import RAW_BUDGET_BYTES, fits_budget
from mimviewer.nets.base import RecurrentModel
from mimviewer.trace import ProbeSpec
from mimviewer.viewmodel.delta import rollout_mode, summarise, timeline_metrics
from mimviewer.viewmodel.readout import metrics_timeline
from mimviewer.viewmodel.results import InferenceError, OutOfDeviceMemory, SlotDone, StepUpdate

if TYPE_CHECKING:
    from mimviewer.viewmodel.session import Session


def probe_spec(session: Session, model: RecurrentModel) -> ProbeSpec:
    """What to record: the session's settings, and raw values (to re-reduce when the settings
    change without re-running) when they and the rollout state fit the budget (sized by
    :mod:`mimviewer.memory`, which counts E3D-LSTM's recall history)."""
    spec = session.probe_settings.replace(keep_raw=True)
    fits = fits_budget(model, spec, 1, session.pre, session.aft, RAW_BUDGET_BYTES)
    return spec.replace(keep_raw=fits)


def inference(
    session: Session,
    run: int,
    *,
    device: str = "auto",
    amp: bool = False,
    only: tuple[int, ...] | None = None,
) -> Generator[StepUpdate | SlotDone, None, None]:
    """Roll out every model (or the slots in ``only``) over the session's sequence, one update
    per step, then one SlotDone per model.

    The models read the ``pre`` context frames only and predict ``aft`` frames after them
    (past the end of the sequence in a forecast: those steps get no difference image). The
    worker thread does the device work and draws the display images (the session's
    renderer), so that scrubbing later only swaps images drawn once. A what-if slot reads its
    own (edited) frames and its difference view is against its reference slot's prediction.
    A delta slot runs its own copy of the model in delta mode (viewmodel.delta), so that a
    cancelled run still finishing a step in its thread never leaves wrappers on a model
    another run uses; its SlotDone carries what it skipped.
    """
    if session.frames is None:
        raise DataError("open a sequence first")
    pre, aft = session.pre, session.aft
    window = session.frames  # fixed for this run, even if the user opens another file meanwhile
    frames = np.asarray(window[:pre])  # only the context is read
    renderer, units, source = session.renderer, session.units, session.source
    dev = pick_device(device)
    outputs_of = {i: s.outputs for i, s in session.models if s.finished and s.outputs is not None}
    for slot_index, slot in session.models:
        if only is not None and slot_index not in only:
            continue
        model = slot.model if slot.delta_eps is None else copy.deepcopy(slot.model)
        reads = frames if slot.inputs is None else slot.inputs
        reference = None if slot.reference is None else outputs_of.get(slot.reference)
        cfg = model.config
        if frames.shape[1:] != (cfg.channels, cfg.height, cfg.width):
            raise ShapeError(
                f"{source or 'the sequence'} has frames (C, H, W) = {frames.shape[1:]} but "
                f"{slot.name} expects {(cfg.channels, cfg.height, cfg.width)}"
            )
        check_rollout(cfg, pre, aft, 1, source=source or "the sequence", trace=True)  # one line, not a crash
        probes = probe_spec(session, model)
        with rollout_mode(model, slot.delta_eps) as delta_session:
            generator = iter_rollout(model, reads, pre, aft, probes=probes, device=dev, amp=amp)
            while True:
                try:
                    step = next(generator)
                except StopIteration as stop:
                    result = stop.value
                    break
                except torch.cuda.OutOfMemoryError as exc:
                    raise OutOfDeviceMemory(
                        f"{slot.name}: the {dev} device ran out of memory ({exc}); try the CPU"
                    ) from exc
                except RuntimeError as exc:  # torch reports shape/device trouble this way
                    raise InferenceError(f"{slot.name}: inference failed on {dev}: {exc}") from exc
                frame = step.frame[0].cpu().numpy()
                probes = step.host_probes(0)  # every map and statistic of the step in one host copy
                target = step.t + 1  # the timeline frame this step predicts
                if reference is not None:
                    against = reference[step.t]
                else:  # past the end of the sequence there is no truth (a forecast): no difference
                    against = window[target] if target < len(window) else None
                image = renderer.frames(frame)
                diff = None if against is None else renderer.differences(frame, against)
                yield StepUpdate(
                    run,
                    slot_index,
                    step.t,
                    step.steps,
                    frame,
                    image,
                    diff,
                    probes.maps,
                    probes.stats,
                    probes.valid,
                )
        outputs = result.outputs[0]  # (steps, C, H, W)
        outputs_of[slot_index] = outputs
        metrics = metrics_timeline(outputs, window, units)
        summary = None
        if delta_session is not None:  # what it skipped, and its error against the exact prediction
            summary = summarise(delta_session, cfg.num_layers, pre + aft - 1, outputs, reference)
            metrics.update(timeline_metrics(summary))
        yield SlotDone(run, slot_index, result.trace, metrics, summary)


def export_job(session: Session, kind: str, path: Path, slot: int = 0) -> Callable[[], Path]:
    """A function that writes one export from a snapshot of the results (safe in a thread).

    kind: "gif"/"mp4" (comparison video), "strip" (PNG), "heatmaps" (PNG of the internals
    grid at the current step), "heatmaps_gif" (the grid at every step, GIF/MP4), "metrics"
    (CSV), "gates" (gate statistics CSV/JSON). Frames are drawn by the session's renderer,
    exactly as the window draws them.
    """
    from mimviewer import export

    inputs = (session.source,) if session.source else ()
    renderer = session.renderer
    if kind in ("gif", "mp4", "strip"):
        gt, predictions, pre = comparison_arrays(session)  # NaN GT frames: not observed yet
        if kind == "strip":
            return lambda: export.write_strip(
                path, gt, predictions, pre=pre, renderer=renderer, inputs=inputs
            )
        notes = session.frame_notes()  # lead, valid time, "not observed yet"
        return lambda: export.write_comparison(
            path, gt, predictions, pre=pre, renderer=renderer, inputs=inputs, notes=notes
        )
    if kind == "metrics":
        table = metrics_table(session)
        return lambda: export.write_metrics_csv(path, table)
    trace = session.trace(slot)
    if trace is None:
        raise DataError("no internals recorded yet: let inference finish")
    if kind == "gates":
        return lambda: export.write_trace_stats(path, trace)
    names, reduction = session.quantities, session.reduction
    if kind == "heatmaps":
        step = session.step_of_frame()
        return lambda: export.write_png(path, export.render_heatmap_grid(trace, step, names, reduction))
    if kind == "heatmaps_gif":
        grids = (export.render_heatmap_grid(trace, t, names, reduction) for t in range(trace.steps))
        return lambda: export.write_video(path, grids, fps=4)
    raise ValueError(f"unknown export {kind!r}")


def comparison_arrays(session: Session) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """(GT of context + future frames, NaN frames where not observed yet (a forecast past the end);
    {model name: its aft predicted frames}; pre), copied."""
    if session.frames is None:
        raise DataError("open a sequence first")
    gt = np.full((session.pre + session.aft, *session.frames.shape[1:]), np.nan, np.float32)
    observed = np.asarray(session.frames[: session.pre + session.aft])
    gt[: len(observed)] = observed
    predictions: dict[str, np.ndarray] = {}
    for index, slot in session.models:
        if slot.reference is not None:  # the what-if rollout has its own export (mimviewer whatif)
            continue
        if slot.outputs is None or not slot.finished:
            raise DataError(f"{slot.name}: inference has not finished yet")
        name = slot.name if slot.name not in predictions else f"{slot.name} ({index + 1})"
        predictions[name] = slot.outputs[-session.aft :].copy()
    return gt, predictions, session.pre


def metrics_table(session: Session) -> dict[str, np.ndarray]:
    """Per-frame metrics of every model; column names carry the model's name when there are two."""
    table: dict[str, np.ndarray] = {}
    for _, slot in session.models:
        for name, values in slot.metrics.items():
            table[name if len(session.models) == 1 else f"{slot.name}:{name}"] = values.copy()
    return table
