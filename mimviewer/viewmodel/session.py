"""The view model's state: the sequence shown, the models and their results, the current frame.

A :class:`Session` holds what the window shows: one sequence (model scale [0, 1] plus its
units), up to two models (slot 0 = the checkpoint, slot 1 = the one compared with it),
their streamed rollouts as numpy, per-frame metrics and the current frame; the internals'
state is mixed in from :mod:`.internals`. Widgets read it and set attributes back; they
never compute on arrays. Every change fires a psygnal signal of :attr:`Session.events`.

Frame k of the timeline shows GT frame k, the model's output that predicts frame k (output
of step k-1; for k < pre it read true frames only, a one-step "context" prediction) and the
internals of that step.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path

import numpy as np
import torch

from mimviewer.data.lazy import LazyFrames
from mimviewer.errors import DataError, ShapeError
from mimviewer.nets.base import RecurrentModel
from mimviewer.render import FrameRenderer
from mimviewer.trace import STAT_NAMES
from mimviewer.viewmodel import jobs
from mimviewer.viewmodel.events import SessionEvents
from mimviewer.viewmodel.internals import InternalsState
from mimviewer.viewmodel.readout import pixel_value
from mimviewer.viewmodel.results import ModelSlot, SlotDone, StepUpdate

RADAR_UNITS = ("dBZ", "mm/h")


class Session(InternalsState):
    """Everything the window shows, without Qt. See the module docstring."""

    def __init__(self) -> None:
        self.events = SessionEvents()
        # (T, C, H, W) model scale: the whole sequence, an array or read lazily from its file (LazyFrames)
        self.all_frames: np.ndarray | LazyFrames | None = None
        self._start = 0  # first frame of the window the models run on (frame 0 of the timeline)
        self._gt_cache: dict[int, np.ndarray] = {}  # drawn GT images by absolute frame index
        self.units = "intensity"
        self.source = ""
        self.renderer = FrameRenderer.for_units()
        self.slots: list[ModelSlot | None] = [None, None]
        self._frame = 0
        self._init_internals()
        self.run_id = 0
        self.needs_rerun = False  # thresholds changed and no raw values are kept to re-reduce
        self._raw = {}
        self._sequence = None  # the data reader's Sequence when the frames came from a file
        self.notes: list[str] = []  # what was done to the frames on the way (resized, ...)
        self.fit = "resize"  # how a sequence of another frame size is fitted to the model (data.FIT_MODES)

    # -- sequence ------------------------------------------------------------------------
    def set_sequence(
        self,
        frames: np.ndarray,
        *,
        units: str = "intensity",
        source: str = "",
        to_physical: Callable[[np.ndarray], np.ndarray] | None = None,
        notes: tuple[str, ...] | list[str] = (),
    ) -> None:
        """Show ``frames`` (T, C, H, W) in model scale [0, 1]; ``to_physical`` maps back to units;
        ``notes`` say what was done to the frames on the way (shown to the user)."""
        if not isinstance(frames, LazyFrames):
            frames = np.asarray(frames, np.float32)
        if frames.ndim == 3:
            frames = frames[:, None]
        if frames.ndim != 4:
            raise ShapeError(f"{source or 'sequence'}: expected frames (T, C, H, W), got {frames.shape}")
        if len(frames) < 2:
            raise DataError(f"{source or 'sequence'}: need at least 2 frames, got {len(frames)}")
        self._sequence = None
        self.notes = list(notes)
        self.all_frames = frames
        self._start = 0
        self.units = units
        self.source = source
        self.renderer = FrameRenderer.for_units(units, to_physical=to_physical)
        self._show_window()

    @property
    def to_physical(self) -> Callable[[np.ndarray], np.ndarray]:
        return self.renderer.to_physical

    def _show_window(self) -> None:
        self._gt_cache = {}
        self._frame = 0
        for slot in range(2):
            self._clear_results(slot)
        self.events.sequence.emit()
        self.events.frame.emit(0)

    @property
    def frames(self) -> np.ndarray | None:
        """The frames from the window start on, (T, C, H, W): timeline frame k is ``frames[k]``."""
        return None if self.all_frames is None else self.all_frames[self._start :]

    @property
    def start(self) -> int:
        return self._start

    @start.setter
    def start(self, value: int) -> None:
        """Move the window the models run on along a long sequence (results are cleared)."""
        if self.all_frames is None:
            return
        value = int(min(max(value, 0), self.max_start))
        if value != self._start:
            self._start = value
            self._show_window()

    @property
    def max_start(self) -> int:
        """The last window start from which the main model's whole context + horizon still fits
        (2 frames without a model); 0 when the sequence is shorter than that."""
        if self.all_frames is None:
            return 0
        slot = self.slots[0]
        needed = slot.model.config.pre + slot.model.config.aft if slot is not None else 2
        return max(0, len(self.all_frames) - needed)

    def open_sequence(self, path: str | Path) -> None:
        """Read a sequence file through the data readers (fitted to the model's frame size, if any)."""
        from mimviewer.data import open_sequence

        self._sequence = open_sequence(path)
        self._show_sequence()

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
            frames, units=seq.meta.units, source=seq.meta.source, to_physical=seq.to_physical, notes=notes
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
        self._raw.pop(slot, None)
        s = self.slots[slot]
        if s is not None:
            s.clear()

    # -- timing: pre / aft -----------------------------------------------------------------
    @property
    def pre(self) -> int:
        slot = self.slots[0]
        if slot is None:
            return self.num_frames
        return max(1, min(slot.model.config.pre, self.num_frames - 1))

    @property
    def aft(self) -> int:
        slot = self.slots[0]
        if slot is None:
            return 0
        return max(1, min(slot.model.config.aft, self.num_frames - self.pre))

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
    def start_run(self) -> int:
        """Forget old results and return the id that updates of the new run carry."""
        self.run_id += 1
        self.needs_rerun = False
        for slot in range(2):
            self._clear_results(slot)
        self.events.models.emit(-1)
        return self.run_id

    def invalidate_run(self) -> None:
        """Updates still on their way from a cancelled run will be ignored by :meth:`accept`."""
        self.run_id += 1

    def inference(
        self, run: int, *, device: str = "auto", amp: bool = False
    ) -> Generator[StepUpdate | SlotDone, None, None]:
        """:func:`mimviewer.viewmodel.jobs.inference` on this session (run it in a worker)."""
        yield from jobs.inference(self, run, device=device, amp=amp)

    def export_job(self, kind: str, path: Path, slot: int = 0) -> Callable[[], Path]:
        """:func:`mimviewer.viewmodel.jobs.export_job` on this session (run it in a worker)."""
        return jobs.export_job(self, kind, path, slot)

    @staticmethod
    def devices() -> list[str]:
        """Devices a user can pick: auto, cpu and every CUDA GPU."""
        return ["auto", "cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]

    def accept(self, update: StepUpdate | SlotDone) -> bool:
        """Store an update from the worker (main thread); False when it belongs to an old run."""
        slot = self.slots[update.slot]
        if update.run != self.run_id or slot is None:
            return False
        if isinstance(update, SlotDone):
            slot.trace, slot.metrics, slot.finished = update.trace, update.metrics, True
            if update.trace is not None and update.trace.raw:
                self._raw[update.slot] = {k: v[:, 0] for k, v in update.trace.raw.items()}
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
            if k not in slot.maps:
                slot.maps[k] = np.zeros((update.steps, *m.shape), np.float32)
                slot.stats[k] = np.zeros((update.steps, len(STAT_NAMES)), np.float32)
            slot.maps[k][update.t] = m
            slot.stats[k][update.t] = update.stats[k]
        slot.done_steps = update.t + 1
        self.events.step.emit(update.slot, update.t)
        return True

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

    def step_of_frame(self, frame: int | None = None) -> int:
        """The network step whose output is frame ``frame`` (step 0 for frame 0)."""
        frame = self._frame if frame is None else frame
        return int(min(max(frame - 1, 0), max(self.steps - 1, 0)))

    # -- what the frame views show ---------------------------------------------------------
    def gt_image(self, frame: int) -> np.ndarray:
        """Display image of GT frame ``frame`` of the timeline, drawn on first use."""
        index = self._start + frame
        if index not in self._gt_cache:
            self._gt_cache[index] = self.renderer.frames(self.all_frames[index])
        return self._gt_cache[index]

    def images_at(self, frame: int | None = None) -> dict[str, np.ndarray | None]:
        """Display images of one frame: "gt", "pred0", "diff0", "pred1", "diff1" (None = not yet)."""
        frame = self._frame if frame is None else frame
        out: dict[str, np.ndarray | None] = {"gt": self.gt_image(frame) if frame < self.num_frames else None}
        for index, slot in self.models:
            t = frame - 1
            ok = 0 <= t < len(slot.images)
            out[f"pred{index}"] = slot.images[t] if ok else None
            out[f"diff{index}"] = slot.diff_images[t] if ok else None
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
        return pixel_value(self.to_physical, truth, prediction, view, y, x)
