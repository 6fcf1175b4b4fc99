"""The view model's state: the sequence shown, the models and their results, the current frame.

A :class:`Session` holds what the window shows: one sequence (model scale [0, 1] plus its
units), up to two models (slot 0 = the checkpoint, slot 1 = the one compared with it)
and two rows derived from the main one (slot 2 = the what-if rollout, :mod:`.whatif`;
slot 3 = the delta inference rollout, :mod:`.delta`), their streamed rollouts as numpy,
per-frame metrics and the current frame; the internals' state is mixed in from
:mod:`.internals`. Widgets read it and set attributes back; they never compute on arrays.
Every change fires a psygnal signal of :attr:`Session.events`.

Frame k of the timeline shows GT frame k, the model's output that predicts frame k (output
of step k-1; for k < pre it read true frames only, a one-step "context" prediction) and the
internals of that step.

The run is a forecast (:mod:`mimviewer.forecast`): the model reads the ``pre`` frames that end
at "now" and predicts ``aft`` frames after it. Context, horizon and "now" are the user's to set
(:meth:`Session.set_forecast`); by default they are the checkpoint's pre/aft and "now" is where
the whole horizon still has truth, or the last frame when the sequence ends earlier. Timeline
frames past the end of the sequence are not observed yet: no GT image, no difference, NaN
metrics (absent, not zero).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mimviewer.data.lazy import LazyFrames
from mimviewer.errors import DataError, ShapeError
from mimviewer.render import FrameRenderer
from mimviewer.viewmodel import readout, timing
from mimviewer.viewmodel.attribution import AttributionState, AttributionView
from mimviewer.viewmodel.delta import DELTA, check_eps, slot_name
from mimviewer.viewmodel.display import DisplayState
from mimviewer.viewmodel.events import SessionEvents
from mimviewer.viewmodel.internals import InternalsState
from mimviewer.viewmodel.readout import STAT_NAMES, pixel_value
from mimviewer.viewmodel.results import ModelSlot, SlotDone, StepUpdate
from mimviewer.viewmodel.whatif import EDITED, WhatIfState
from mimviewer.whatif import Edit, EditList

if TYPE_CHECKING:  # torch is imported after the window is shown (in the background)
    from mimviewer.forecast import ForecastPlan
    from mimviewer.nets.base import RecurrentModel

RADAR_UNITS = ("dBZ", "mm/h")


class Session(InternalsState, DisplayState):
    """Everything the window shows, without Qt. See the module docstring."""

    def __init__(self) -> None:
        self.events = SessionEvents()
        # (T, C, H, W) model scale: the whole sequence, an array or read lazily from its file (LazyFrames)
        self.all_frames: np.ndarray | LazyFrames | None = None
        self._gt_cache: dict[int, np.ndarray] = {}  # drawn GT images by absolute frame index
        self.units = "intensity"
        self.source = ""
        self.renderer = FrameRenderer.for_units()
        # main, compared, what-if (EDITED), delta inference (DELTA)
        self.slots: list[ModelSlot | None] = [None, None, None, None]
        self._frame = 0
        self._init_internals()
        self._init_display()
        self.run_id = 0
        self.needs_rerun = False  # thresholds changed and no raw values are kept to re-reduce
        self._sequence = None  # the data reader's Sequence when the frames came from a file
        self.notes: list[str] = []  # what was done to the frames on the way (resized, ...)
        self.sequence_path: str | None = None  # the file the sequence was read from (None: given as frames)
        self.origin = ""  # "demo" when the bundled demo is shown (a view state reopens it)
        self.fit = "resize"  # how a sequence of another frame size is fitted to the model (data.FIT_MODES)
        self._context: int | None = None  # the user's context / horizon (None: the checkpoint's)
        self._horizon: int | None = None
        self._now: int | None = None  # sequence index of "now" (None: the default)
        self.frame_interval_s: float | None = None  # time between frames, when the data says
        self.last_time: datetime | None = None  # wall-clock time of the last frame (live scans)
        self.verification: dict[str, np.ndarray] = {}  # live: running skill per lead (key -> (aft,))
        self.verification_pairs: np.ndarray | None = None  # live: forecast/scan pairs per lead
        self.attribution = AttributionState()
        self.whatif = WhatIfState()

    # -- sequence ------------------------------------------------------------------------
    def set_sequence(
        self,
        frames: np.ndarray,
        *,
        units: str = "intensity",
        source: str = "",
        to_physical: Callable[[np.ndarray], np.ndarray] | None = None,
        notes: tuple[str, ...] | list[str] = (),
        frame_interval_s: float | None = None,
        last_time: datetime | None = None,
    ) -> None:
        """Show ``frames`` (T, C, H, W) in model scale [0, 1]; ``to_physical`` maps back to units;
        ``notes`` say what was done to the frames on the way (shown to the user);
        ``frame_interval_s`` and ``last_time`` give forecasts their lead and valid times."""
        if not isinstance(frames, LazyFrames):  # a file's frames stay lazy: read where looked at
            frames = np.asarray(frames, np.float32)
        if frames.ndim == 3:
            frames = frames[:, None]
        if frames.ndim != 4:
            raise ShapeError(f"{source or 'sequence'}: expected frames (T, C, H, W), got {frames.shape}")
        if len(frames) < 1:
            raise DataError(f"{source or 'sequence'}: no frames")
        self._sequence = None
        self.origin = ""
        self.sequence_path = None
        self.notes = list(notes)
        self.all_frames = frames
        self._now = None
        self.frame_interval_s, self.last_time = frame_interval_s, last_time
        self.units = units
        self.source = source
        self.renderer = FrameRenderer.for_units(units, to_physical=to_physical)
        self.attribution.region = self.attribution.brush = None  # drawn on the old frames
        self.events.region.emit()
        self._show_window()

    @property
    def to_physical(self) -> Callable[[np.ndarray], np.ndarray]:
        return self.renderer.to_physical

    def _show_window(self) -> None:
        self._gt_cache = {}
        self._forget_view()
        self._heatmap_images = {}
        self._frame = 0
        self.slots[EDITED] = None  # it read the old frames
        self.attribution.view = None
        for slot in range(len(self.slots)):
            self._clear_results(slot)
        self.events.sequence.emit()
        self.events.frame.emit(0)

    @property
    def frames(self) -> np.ndarray | None:
        """The frames from the window start on, (T, C, H, W): timeline frame k is ``frames[k]``
        (fewer than the timeline's frames when it runs past the end of the sequence)."""
        return None if self.all_frames is None else self.all_frames[self.start :]

    @property
    def start(self) -> int:
        """Sequence index of timeline frame 0 (the first context frame)."""
        plan = self.plan
        return 0 if plan is None else plan.first

    @start.setter
    def start(self, value: int) -> None:
        """Move the context along a long sequence (results are cleared)."""
        if self.all_frames is not None:
            self.set_forecast(now=int(value) + self.pre - 1)

    # -- forecast: context, horizon, now --------------------------------------------------
    @property
    def plan(self) -> ForecastPlan | None:
        """Which frames the models read and predict (None without a model or a sequence)."""
        slot = self.slots[0]
        if slot is None or self.all_frames is None:
            return None
        from mimviewer.forecast import ForecastPlan, default_now  # a model is loaded: torch is too

        cfg = slot.model.config
        length = len(self.all_frames)
        pre = max(1, min(self._context or cfg.pre, length))
        aft = max(1, self._horizon or cfg.aft)
        now = default_now(length, pre, aft) if self._now is None else self._now
        now = min(max(now, pre - 1), length - 1)
        now_time = None
        if self.last_time is not None and self.frame_interval_s:
            now_time = self.last_time - timedelta(seconds=(length - 1 - now) * self.frame_interval_s)
        return ForecastPlan(length, pre, aft, now, cfg.aft, self.frame_interval_s, now_time)

    @property
    def now_index(self) -> int | None:
        """The user's "now" (sequence index of the last context frame; None: the default)."""
        return self._now

    @property
    def context(self) -> int | None:
        """The user's context length (None: the checkpoint's)."""
        return self._context

    @property
    def horizon(self) -> int | None:
        """The user's horizon (None: the checkpoint's)."""
        return self._horizon

    def set_forecast(
        self, *, context: int | None = None, horizon: int | None = None, now: int | None = None
    ) -> None:
        """Set context and horizon (frames; a horizon past the trained one runs on) and "now"
        (sequence index of the last context frame, negative from the end); results are cleared."""
        for name, value in (("context", context), ("horizon", horizon)):
            if value is not None and value < 1:
                raise ShapeError(f"{name} must be >= 1 frame, got {value}")
        if context is not None:
            self._context = int(context)
        if horizon is not None:
            self._horizon = int(horizon)
        if now is not None and self.all_frames is not None:
            self._now = int(now) + len(self.all_frames) if now < 0 else int(now)
        self._show_window()

    def is_observed(self, frame: int) -> bool:
        """Whether timeline frame ``frame`` has a true frame (past the end of the data it has not)."""
        plan = self.plan
        return plan.is_observed(frame) if plan is not None else frame < self.num_frames

    def frame_status(self, frame: int) -> str:
        """The frame views' header: which frame, and what the model knew when it predicted it."""
        where = f" (sequence frame {self.start + frame})" if self.start else ""
        head = f"frame {frame} / {self.timeline_length - 1}{where}"
        plan = self.plan
        if plan is None:
            return f"{head} · open a checkpoint to predict"
        if self.is_context(frame):
            return f"{head} · context: the model reads this true frame"
        note = plan.frame_note(frame).removeprefix("forecast ")
        return f"{head} · predicted {note} · the model saw frames 0–{plan.pre - 1} only"

    def frame_note(self, frame: int) -> str:
        """What timeline frame ``frame`` is, e.g. "forecast +6 min, valid 12:42; not observed yet"."""
        plan = self.plan
        return plan.frame_note(frame) if plan is not None else "sequence frame"

    def open_sequence(self, path: str | Path) -> None:
        """Read a sequence file through the data readers (fitted to the model's frame size, if any)."""
        from mimviewer.data import open_sequence

        self._sequence = open_sequence(path)
        self._show_sequence()
        self.sequence_path = str(path)  # a view state reopens it

    def _show_sequence(self) -> None:
        """Show the opened sequence adapted to the main model (:func:`mimviewer.data.adapt`)."""
        from mimviewer.data import adapt

        opened = self._sequence
        if opened is None:
            return
        cfg = self.slots[0].model.config if self.slots[0] is not None else None
        shape = None if cfg is None else (cfg.channels, cfg.height, cfg.width)
        seq, _, notes = adapt(opened, shape, fit=self.fit, stop=1)  # the notes; frames read lazily:
        frames = LazyFrames(seq, channels=None if shape is None else shape[0])  # where looked at
        self.set_sequence(
            frames,
            units=seq.meta.units,
            source=seq.meta.source,
            to_physical=seq.to_physical,
            notes=notes,
            frame_interval_s=seq.meta.frame_interval_s,
        )
        self._sequence = opened

    @property
    def num_frames(self) -> int:
        return 0 if self.frames is None else len(self.frames)

    @property
    def is_radar(self) -> bool:
        return self.units in RADAR_UNITS

    # -- models ------------------------------------------------------------------------------
    def set_model(self, model: RecurrentModel, *, name: str, source: str = "", slot: int = 0) -> None:
        """Put a model into slot 0 (main) or 1 (compared); clears that slot's results."""
        model.eval()
        self.slots[slot] = ModelSlot(model=model, name=name, source=source)
        if slot == 0:  # the what-if rollout and the attribution were the old main model's
            self.slots[EDITED] = None
            self.attribution.view = None
            delta = self.slots[DELTA]
            if delta is not None:  # the delta row follows the main model, at the same threshold
                self.slots[DELTA] = self._delta_slot(delta.delta_eps)
        if slot == 0 and self._sequence is not None and self.frames is not None:
            cfg = model.config
            if self.frames.shape[1:] != (cfg.channels, cfg.height, cfg.width):
                self._show_sequence()
        self._clear_results(slot)
        if slot == 0 or not self._quantities:
            self._quantities = self.default_quantities()
        self.events.models.emit(slot)

    def remove_model(self, slot: int) -> None:
        self.slots[slot] = None
        self.events.models.emit(slot)

    def load_checkpoint(self, path: str | Path, *, slot: int = 0) -> None:
        """Load a checkpoint into a slot; a sequence opened from a file is resized to fit it."""
        from mimviewer.checkpoints import load_checkpoint, load_for_input

        if self.frames is None:
            loaded = load_checkpoint(path)
        else:
            channels, size = self.frames.shape[1], self.frames.shape[2:]
            loaded = load_for_input(path, channels=channels, frame_size=(size[0], size[1]))
        self.set_model(loaded.model, name=Path(path).name, source=str(path), slot=slot)

    def _clear_results(self, slot: int) -> None:
        self._forget_slot(slot)
        s = self.slots[slot]
        if s is not None:
            s.clear()

    # -- timing: pre / aft -----------------------------------------------------------------
    @property
    def pre(self) -> int:
        plan = self.plan
        return self.num_frames if plan is None else plan.pre

    @property
    def aft(self) -> int:
        plan = self.plan
        return 0 if plan is None else plan.aft

    @property
    def steps(self) -> int:
        return self.pre + self.aft - 1

    @property
    def timeline_length(self) -> int:
        """Frames on the timeline: the context plus the predicted ones (all frames without a model)."""
        return self.pre + self.aft if self.slots[0] is not None else self.num_frames

    def is_context(self, frame: int) -> bool:
        return frame < self.pre

    # -- runs: the worker drives jobs.inference, the main thread hands updates to accept ----
    def start_run(self, only: tuple[int, ...] | None = None) -> int:
        """Forget old results (of the slots in ``only``, or all) and return the id that updates of
        the new run carry."""
        self.run_id += 1
        self.needs_rerun = False
        for slot in range(len(self.slots)) if only is None else only:
            self._clear_results(slot)
        self.events.models.emit(-1)
        return self.run_id

    def invalidate_run(self) -> None:
        """Updates still on their way from a cancelled run will be ignored by :meth:`accept`."""
        self.run_id += 1

    def inference(
        self, run: int, *, device: str = "auto", amp: bool = False, only: tuple[int, ...] | None = None
    ) -> Generator[StepUpdate | SlotDone, None, None]:
        """:func:`mimviewer.viewmodel.jobs.inference` on this session (run it in a worker)."""
        from mimviewer.viewmodel import jobs

        yield from jobs.inference(self, run, device=device, amp=amp, only=only)

    def export_job(self, kind: str, path: Path, slot: int = 0) -> Callable[[], Path]:
        """:func:`mimviewer.viewmodel.jobs.export_job` on this session (run it in a worker)."""
        from mimviewer.viewmodel import jobs

        return jobs.export_job(self, kind, path, slot)

    @staticmethod
    def devices() -> list[str]:
        """Devices a user can pick: auto, cpu and every CUDA GPU."""
        import torch

        return ["auto", "cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]

    def accept(self, update: StepUpdate | SlotDone) -> bool:
        """Store an update from the worker (main thread); False when it belongs to an old run."""
        slot = self.slots[update.slot]
        if update.run != self.run_id or slot is None:
            return False
        if isinstance(update, SlotDone):
            slot.trace, slot.metrics, slot.finished = update.trace, update.metrics, True
            slot.delta = update.delta
            if update.trace is not None and not self.same_settings(update.trace.spec):
                self._rereduce()  # the settings changed while the run was going
            self.events.finished.emit(update.slot)
            return True
        if slot.outputs is None:
            slot.outputs = np.zeros((update.steps, *update.frame.shape), np.float32)
            slot.images = [None] * update.steps
            slot.diff_images = [None] * update.steps
        slot.outputs[update.t] = update.frame
        slot.images[update.t] = update.image
        slot.diff_images[update.t] = update.diff_image
        for k, m in update.maps.items():
            if k not in slot.maps:  # NaN until a step computes it (MIM-N at step 0, E3D's resting steps)
                slot.maps[k] = np.full((update.steps, *m.shape), np.nan, np.float32)
                slot.stats[k] = np.full((update.steps, len(STAT_NAMES)), np.nan, np.float32)
                slot.valid[k] = np.zeros(update.steps, bool)
            slot.maps[k][update.t] = m
            slot.stats[k][update.t] = update.stats[k]
            slot.valid[k][update.t] = update.valid[k]
        slot.done_steps = update.t + 1
        self._score_step(slot, update)
        self._forget_slot(update.slot)
        self.events.step.emit(update.slot, update.t)
        return True

    def _score_step(self, slot: ModelSlot, update: StepUpdate) -> None:
        """Per-frame metrics of the frame this step predicted, where its truth exists, so that the
        metric curves fill in as steps finish (the finished rollout's metrics replace them)."""
        frame = update.t + 1
        if self.frames is None or frame >= self.num_frames or update.frame.shape != self.frames.shape[1:]:
            return
        scores = readout.frame_scores(self.frames[frame], update.frame, self.units)
        for name, value in scores.items():
            if name not in slot.metrics or len(slot.metrics[name]) != update.steps + 1:
                slot.metrics[name] = np.full(update.steps + 1, np.nan)
            slot.metrics[name][frame] = value

    @property
    def finished(self) -> bool:
        return all(s.finished for _, s in self.models)

    # -- current frame -------------------------------------------------------------------
    @property
    def frame(self) -> int:
        return self._frame

    @frame.setter
    def frame(self, value: int) -> None:
        value = int(min(max(value, 0), max(self.timeline_length - 1, 0)))
        if value != self._frame:
            self._frame = value
            self.events.frame.emit(value)

    def frame_text(self, frame: int | None = None) -> str:
        """The frame as the frame box shows it (with its time where the data has times)."""
        return timing.frame_text(self._frame if frame is None else frame, self.start, self.frame_interval_s)

    def parse_frame(self, text: str) -> int:
        """The frame a typed number or time means (ValueError with one line when none)."""
        return timing.parse_frame(
            text, start=self.start, interval_s=self.frame_interval_s, length=self.timeline_length
        )

    def step_of_frame(self, frame: int | None = None) -> int:
        """The network step whose output is frame ``frame`` (step 0 for frame 0)."""
        frame = self._frame if frame is None else frame
        return int(min(max(frame - 1, 0), max(self.steps - 1, 0)))

    # -- what the frame views show ---------------------------------------------------------
    def gt_image(self, frame: int) -> np.ndarray | None:
        """Display image of GT frame ``frame`` of the timeline, drawn on first use (None: not observed)."""
        index = self.start + frame
        if not 0 <= index < len(self.all_frames):
            return None
        if index not in self._gt_cache:
            self._gt_cache[index] = self.renderer.frames(self.all_frames[index])
        return self._gt_cache[index]

    def images_at(self, frame: int | None = None) -> dict[str, np.ndarray | None]:
        """Display images of one frame: "gt", "pred0", "diff0", "pred1", "diff1" (None = not yet)."""
        frame = self._frame if frame is None else frame
        observed = frame < self.num_frames
        gt = self.gt_image(frame) if observed else None
        out: dict[str, np.ndarray | None] = {"gt": self.view_image("gt", frame, gt)}
        for index, slot in self.models:
            t = frame - 1
            ok = 0 <= t < len(slot.images)
            out[f"pred{index}"] = self.view_image(f"pred{index}", frame, slot.images[t] if ok else None)
            diff = slot.diff_images[t] if ok and observed else None
            out[f"diff{index}"] = self.view_image(f"diff{index}", frame, diff)
        return out

    def value_at(self, view: str, frame: int, y: int, x: int) -> float | None:
        """The physical value under the cursor in one view (None outside the frame or not yet computed)."""
        if self.frames is None:
            return None
        h, w = self.frames.shape[2:]
        if not (0 <= y < h and 0 <= x < w):
            return None
        truth = self.frames[frame] if frame < self.num_frames else None
        prediction = None
        if view != "gt":
            slot = self.slots[int(view[-1])]
            if slot is not None and slot.outputs is not None and 0 <= frame - 1 < slot.done_steps:
                prediction = slot.outputs[frame - 1]
                reference = None if slot.reference is None else self.slots[slot.reference]
                if reference is not None and reference.outputs is not None:  # edited − original
                    truth = reference.outputs[frame - 1]
        return pixel_value(self.to_physical, truth, prediction, view, y, x)

    def frame_notes(self) -> list[str]:
        """One line per timeline frame (context, lead, valid time, not observed) for exports."""
        return [self.frame_note(k) for k in range(self.timeline_length)]

    # -- attribution (the job runs in a worker: viewmodel.attribution.attribution_job) -----------
    def set_region(self, region: tuple[int, int, int, int] | None) -> None:
        """The rectangle of the predicted frame to explain (x0, y0, x1, y1; None: none)."""
        region = None if region is None else tuple(int(v) for v in region)
        if region != self.attribution.region:
            self.attribution.region = region
            self.events.region.emit()

    def paint_region(self, points: list[tuple[float, float]], radius: float) -> None:
        """Add a brush stroke (pixel coordinates) to the region to explain."""
        from mimviewer.whatif import brush_mask

        if self.frames is None:
            return
        height, width = self.frames.shape[2:]
        stroke = brush_mask(height, width, points, radius)
        brush = self.attribution.brush
        self.attribution.brush = stroke if brush is None else brush | stroke
        self.events.region.emit()

    def clear_brush(self) -> None:
        if self.attribution.brush is not None:
            self.attribution.brush = None
            self.events.region.emit()

    def accept_attribution(self, view: AttributionView | None) -> None:
        """Show a finished attribution (main thread)."""
        self.attribution.view = view
        if view is not None:
            self.attribution.context_frame = int(np.argmax(np.abs(view.frame_totals)))
        self.events.attribution.emit()

    def save_attribution(self, path: str | Path) -> Path:
        """Write the shown attribution: .npz (every number), .png or .gif (as ``mimviewer attribute``)."""
        from mimviewer.attribution_images import write_attribution_image

        view = self.attribution.view
        if view is None or self.frames is None:
            raise DataError("nothing to save yet: explain a frame first")
        result = view.result
        result.meta.update(input=self.source, model=self.slots[0].name if self.slots[0] else "")
        if Path(path).suffix.lower() == ".npz":
            return result.save(path)
        slot = self.slots[0]
        if slot is None or slot.outputs is None or len(slot.outputs) < result.frame:
            raise DataError("the explained frame's prediction is gone: run inference again")
        return write_attribution_image(
            path,
            result,
            self.frames[: result.pre],
            slot.outputs[result.frame - 1],
            units=self.units,
            renderer=self.renderer,
        )

    # -- what-if ------------------------------------------------------------------------------------
    def push_edit(self, edit: Edit) -> None:
        """Add an edit of a context frame (checked against the frames first)."""
        self.whatif.check(self, edit)
        self.whatif.edits.push(edit)
        self.events.edits.emit()

    def undo_edit(self) -> Edit | None:
        edit = self.whatif.edits.undo()
        self.events.edits.emit()
        return edit

    def redo_edit(self) -> Edit | None:
        edit = self.whatif.edits.redo()
        self.events.edits.emit()
        return edit

    def set_edits(self, edits: EditList) -> None:
        """Replace the edit list (opened from a file or the saved window state)."""
        if self.frames is not None:
            for edit in edits:
                self.whatif.check(self, edit)
        self.whatif.edits = edits
        self.events.edits.emit()

    def set_edit_frame(self, frame: int) -> None:
        self.whatif.frame = int(min(max(frame, 0), max(self.pre - 1, 0)))
        self.events.edits.emit()

    def edited_image(self, frame: int | None = None) -> np.ndarray | None:
        """Display image of a context frame with the edits applied."""
        if self.frames is None:
            return None
        frame = self.whatif.frame if frame is None else frame
        return self.renderer.frames(self.whatif.edited_context(self)[frame])

    def prepare_whatif(self) -> tuple[int, ...]:
        """Put the edited rollout's slot in place (the main model, the edited frames); returns the
        slots a what-if run rolls out."""
        main = self.slots[0]
        if main is None or self.frames is None:
            raise DataError("open a sequence and a checkpoint first")
        self.slots[EDITED] = ModelSlot(
            model=main.model,
            name="edited",
            source=f"what-if: {main.name} on the edited context",
            inputs=self.whatif.edited_window(self),
            reference=0,
        )
        self.events.models.emit(EDITED)
        return (EDITED,) if main.finished else (0, EDITED)

    # -- delta inference -------------------------------------------------------------------------------
    @property
    def delta_eps(self) -> float | None:
        """The delta row's threshold (None: no delta row)."""
        slot = self.slots[DELTA]
        return None if slot is None else slot.delta_eps

    def _delta_slot(self, eps: float) -> ModelSlot:
        main = self.slots[0]
        return ModelSlot(
            model=main.model,
            name=slot_name(eps),
            source=f"delta inference: {main.name} with |Δh| < {eps:g} skipped",
            reference=0,
            reference_name="exact",
            delta_eps=eps,
        )

    def set_delta(self, eps: float | None) -> tuple[int, ...]:
        """Show the main model's delta rollout at threshold ``eps`` as an extra row (None: remove it;
        0 is the exact rollout up to float rounding); returns the slots a run must roll out."""
        if eps is None:
            if self.slots[DELTA] is not None:
                self.slots[DELTA] = None
                self.events.models.emit(DELTA)
            return ()
        eps = check_eps(eps)
        main = self.slots[0]
        if main is None:
            raise DataError("open a checkpoint first")
        self.slots[DELTA] = self._delta_slot(eps)
        self.events.models.emit(DELTA)
        return (DELTA,) if main.finished else (0, DELTA)

    def delta_status(self) -> str:
        """What the delta row skipped, per layer (one line; empty without a finished delta row)."""
        slot = self.slots[DELTA]
        return "" if slot is None or slot.delta is None else slot.delta.status()
