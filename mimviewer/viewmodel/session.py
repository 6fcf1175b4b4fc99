"""The view model's state: the sequence shown, the models and their results, the current frame.

A :class:`Session` holds what the window shows: one sequence (model scale [0, 1] plus its
units), up to two models (slot 0 = the checkpoint, slot 1 = the one compared with it)
and two rows derived from the main one (slot 2 = the what-if rollout, :mod:`.whatif`;
slot 3 = the delta inference rollout, :mod:`.delta`), their streamed rollouts as numpy,
per-frame metrics and the current frame. Widgets read it and set attributes back; they never
compute on arrays. Every change fires a psygnal signal of :attr:`Session.events`.

This module is the core (the sequence, the current frame, runs and the updates they send);
the rest is mixed in, one job per module: the forecast's context, horizon and "now"
(:mod:`.forecast_state`), the model slots (:mod:`.slots`), the attribution and what-if state
(:mod:`.explain_state`), the frame views' images and readout (:mod:`.frame_images`), the
internals (:mod:`.internals`) and the display (:mod:`.display`).

Frame k of the timeline shows GT frame k, the model's output that predicts frame k (output
of step k-1; for k < pre it read true frames only, a one-step "context" prediction) and the
internals of that step.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import datetime
from pathlib import Path

import numpy as np

from mimviewer.data.lazy import LazyFrames
from mimviewer.errors import DataError, ShapeError
from mimviewer.render import FrameRenderer
from mimviewer.viewmodel import readout, timing
from mimviewer.viewmodel.display import DisplayState
from mimviewer.viewmodel.events import SessionEvents
from mimviewer.viewmodel.explain_state import ExplainState
from mimviewer.viewmodel.forecast_state import ForecastState
from mimviewer.viewmodel.frame_images import FrameImagesState
from mimviewer.viewmodel.heatmap_images import HeatmapImagesState
from mimviewer.viewmodel.internals import InternalsState
from mimviewer.viewmodel.readout import STAT_NAMES
from mimviewer.viewmodel.results import ModelSlot, SlotDone, StepUpdate
from mimviewer.viewmodel.slots import SlotsState
from mimviewer.viewmodel.whatif import EDITED

RADAR_UNITS = ("dBZ", "mm/h")


class Session(
    ForecastState,
    SlotsState,
    ExplainState,
    FrameImagesState,
    InternalsState,
    DisplayState,
    HeatmapImagesState,
):
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
        self._init_heatmap_images()
        self.run_id = 0
        self.needs_rerun = False  # thresholds changed and no raw values are kept to re-reduce
        self._sequence = None  # the data reader's Sequence when the frames came from a file
        self.notes: list[str] = []  # what was done to the frames on the way (resized, ...)
        self.sequence_path: str | None = None  # the file the sequence was read from (None: given as frames)
        self.origin = ""  # "demo" when the bundled demo is shown (a view state reopens it)
        self.fit = "resize"  # how a sequence of another frame size is fitted to the model (data.FIT_MODES)
        self._init_forecast()
        self.verification: dict[str, np.ndarray] = {}  # live: running skill per lead (key -> (aft,))
        self.verification_pairs: np.ndarray | None = None  # live: forecast/scan pairs per lead
        self._init_explain()

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
