"""The Qt-free view model of the window (napari-style): state, maths and plain-Python events.

A :class:`Session` holds what the window shows: one sequence (model scale [0, 1] plus its
units), up to two models (slot 0 = the checkpoint, slot 1 = the one compared with it),
their streamed rollouts as numpy, per-frame metrics, the current frame and the chosen
quantities / reduction / saturation thresholds. Widgets read it and set attributes back;
they never compute on arrays. Every change fires an :class:`Event` the widgets subscribe to.

Inference runs as a generator (:meth:`Session.inference`) that a GUI worker thread drives:
it does the device work and renders display-ready images, yielding one :class:`StepUpdate`
per network step; the main thread hands each update to :meth:`Session.accept`, which only
stores it. Scrubbing then swaps images that were rendered once.

Frame k of the timeline shows GT frame k, the model's output that predicts frame k (output
of step k-1; for k < pre it read true frames only, a one-step "context" prediction) and the
internals of that step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mimviewer.data import colors
from mimviewer.data.lazy import LazyFrames
from mimviewer.errors import DataError, MimviewerError, ShapeError
from mimviewer.inference import iter_rollout, pick_device
from mimviewer.nets.base import RecurrentModel
from mimviewer.trace import MAP_REDUCTIONS, STAT_NAMES, ProbeSpec, Trace, key, split_key

# Reductions the internals panel offers: name -> label.
REDUCTIONS: dict[str, str] = {
    "mean": "mean over channels",
    "saturated": "saturated fraction",
    "channel": "one channel",
}
# Quantities shown first when a model has them (the ones DESIGN.md's window lists).
PREFERRED_QUANTITIES: tuple[str, ...] = ("f", "f'", "i", "o", "D", "N", "S", "C", "M", "H")
# Keep raw probe tensors (to re-reduce when thresholds change without re-running) up to this size.
RAW_BUDGET_BYTES = 256 * 2**20
RADAR_UNITS = ("dBZ", "mm/h")


class InferenceError(MimviewerError):
    """The rollout failed on the device (the message says which model and why)."""


class OutOfDeviceMemory(InferenceError):
    """The device ran out of memory; running on the CPU (or a smaller batch) may work."""


class Event:
    """A list of callbacks; ``emit(**info)`` calls each in order."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, **info: Any) -> None:
        for callback in list(self._callbacks):
            callback(**info)


@dataclass
class SessionEvents:
    sequence: Event = field(default_factory=Event)  # a new sequence was set
    models: Event = field(default_factory=Event)  # a model slot changed (results cleared)
    step: Event = field(default_factory=Event)  # slot=, t=: one more step arrived
    finished: Event = field(default_factory=Event)  # slot=: a rollout finished (metrics ready)
    frame: Event = field(default_factory=Event)  # frame=: the current frame changed
    internals: Event = field(default_factory=Event)  # quantities/reduction/thresholds changed


@dataclass
class ModelSlot:
    """One model and what its rollout produced so far (numpy on the host)."""

    model: RecurrentModel
    name: str  # label in the views, e.g. the checkpoint's file name
    source: str  # where it came from (path, or "random weights")
    outputs: np.ndarray | None = None  # (steps, C, H, W): output t predicts frame t+1
    images: list[np.ndarray | None] = field(default_factory=list)  # per step, display RGB (H, W, 3)
    diff_images: list[np.ndarray | None] = field(default_factory=list)
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (steps, 4, *S)
    stats: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (steps, 6)
    done_steps: int = 0
    trace: Trace | None = None  # the whole trace, once finished
    metrics: dict[str, np.ndarray] = field(default_factory=dict)  # per frame (T,), NaN where none
    finished: bool = False


@dataclass
class StepUpdate:
    """What the worker thread sends for one finished network step."""

    run: int
    slot: int
    t: int
    steps: int
    frame: np.ndarray  # (C, H, W) model scale
    image: np.ndarray  # (H, W, 3) uint8, rendered with the shared colour scale
    diff_image: np.ndarray  # (H, W, 3) uint8, prediction - GT on the diverging scale
    maps: dict[str, np.ndarray]  # key -> (4, *S) for batch item 0
    stats: dict[str, np.ndarray]  # key -> (6,)


@dataclass
class SlotDone:
    """Sent when one model's rollout is complete."""

    run: int
    slot: int
    trace: Trace | None
    metrics: dict[str, np.ndarray]


@dataclass
class ColourScale:
    """How model-scale values become colours, and how the colour bar is labelled."""

    lut: np.ndarray  # (256, 3) uint8 over model scale [0, 1]
    units: str  # what the bar's numbers mean
    ticks: list[tuple[float, str]]  # (position in [0, 1], label)


def is_gate(name: str) -> bool:
    """Sigmoid gates live in [0, 1] (i, f, o and their primed / MIM-N / MIM-S versions)."""
    return name.split(".")[-1].rstrip("'") in {"i", "f", "o", "r", "u", "z"}


def _lut(name: str) -> np.ndarray:
    """A 256-entry RGB lookup table over [0, 1]: the data scales, or "diverging" (the exports' one)."""
    if name == "diverging":
        from mimviewer.export import DIVERGING_LUT

        return DIVERGING_LUT
    return colors.color_scale("intensity" if name != "pysteps" else "dBZ", name).lookup_table()


def colour_lut(name: str) -> np.ndarray:
    """The lookup tables the views use: "grey", "viridis", "pysteps" (radar) or "diverging"."""
    return _lut(name)


class Session:
    """Everything the window shows, without Qt. See the module docstring."""

    def __init__(self) -> None:
        self.events = SessionEvents()
        # (T, C, H, W) model scale: the whole sequence, an array or read lazily from its file (LazyFrames)
        self.all_frames: np.ndarray | LazyFrames | None = None
        self._start = 0  # first frame of the window the models run on (frame 0 of the timeline)
        self._gt_cache: dict[int, np.ndarray] = {}  # rendered GT images by absolute frame index
        self.units = "intensity"
        self.source = ""
        self.to_physical: Callable[[np.ndarray], np.ndarray] = lambda x: x
        self.slots: list[ModelSlot | None] = [None, None]
        self._frame = 0
        self._quantities: list[str] = []
        self._reduction = "mean"
        self._lo, self._hi, self._channel = 0.1, 0.9, 0
        self.run_id = 0
        self.needs_rerun = False  # thresholds changed and no raw values are kept to re-reduce
        self._raw: dict[int, dict[str, np.ndarray]] = {}  # slot -> key -> (steps, C, *S)
        self._sequence = None  # the data reader's Sequence when the frames came from a file
        self.notes: list[str] = []  # what was done to the frames on the way (resized, ...)

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
        self.to_physical = to_physical or (lambda x: x)
        self._show_window()

    def _show_window(self) -> None:
        self._gt_cache = {}
        self._frame = 0
        for slot in range(2):
            self._clear_results(slot)
        self.events.sequence.emit()
        self.events.frame.emit(frame=0)

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

    def gt_image(self, frame: int) -> np.ndarray:
        """Display image of GT frame ``frame`` of the timeline, rendered on first use."""
        index = self._start + frame
        if index not in self._gt_cache:
            self._gt_cache[index] = self.render(self.all_frames[index])
        return self._gt_cache[index]

    def open_sequence(self, path: str | Path) -> None:
        """Read a sequence file through the data readers (fitted to the model's frame size, if any)."""
        from mimviewer.data import open_sequence

        self._sequence = open_sequence(path)
        self._show_sequence()

    def _show_sequence(self) -> None:
        """Show the opened sequence, fitted to the main model: resized to its frame size and
        converted to its channel count (RGB -> grey by luma, grey -> RGB), as `export` does."""
        from mimviewer.data import fit_to

        opened = seq = self._sequence
        if seq is None:
            return
        cfg = self.slots[0].model.config if self.slots[0] is not None else None
        if cfg is not None:
            seq = fit_to(seq, cfg.height, cfg.width)
        frames = LazyFrames(seq, channels=cfg.channels if cfg is not None else None)  # read where looked at
        notes = tuple(seq.meta.transforms)
        if cfg is not None and seq.meta.channels != cfg.channels:
            notes += (f"{seq.meta.channels} channel(s) -> {cfg.channels} for the model",)
        self.set_sequence(
            frames,
            units=seq.meta.units,
            source=seq.meta.source,
            to_physical=seq.to_physical,
            notes=notes,
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
        self.events.models.emit(slot=slot)

    def remove_model(self, slot: int) -> None:
        self.slots[slot] = None
        self.events.models.emit(slot=slot)

    def load_checkpoint(self, path: str | Path, *, slot: int = 0) -> None:
        """Load a checkpoint into a slot; a sequence opened from a file is resized to fit it."""
        from mimviewer.checkpoints import load_checkpoint

        if self.frames is None:
            loaded = load_checkpoint(path)
        else:
            channels, size = self.frames.shape[1], tuple(self.frames.shape[2:])
            try:  # the sequence's frame size, unless the weights fix another one
                loaded = load_checkpoint(path, channels=channels, frame_size=size)
            except ShapeError:
                loaded = load_checkpoint(path, channels=channels)
        self.set_model(loaded.model, name=Path(path).name, source=str(path), slot=slot)

    @property
    def models(self) -> list[tuple[int, ModelSlot]]:
        return [(i, s) for i, s in enumerate(self.slots) if s is not None]

    def _clear_results(self, slot: int) -> None:
        self._raw.pop(slot, None)
        s = self.slots[slot]
        if s is None:
            return
        s.outputs, s.images, s.diff_images = None, [], []
        s.maps, s.stats, s.trace, s.metrics = {}, {}, None, {}
        s.done_steps, s.finished = 0, False

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

    # -- inference (runs in a worker thread) ----------------------------------------------
    def start_run(self) -> int:
        """Forget old results and return the id that updates of the new run carry."""
        self.run_id += 1
        self.needs_rerun = False
        for slot in range(2):
            self._clear_results(slot)
        self.events.models.emit(slot=-1)
        return self.run_id

    def invalidate_run(self) -> None:
        """Updates still on their way from a cancelled run will be ignored by :meth:`accept`."""
        self.run_id += 1

    def probe_spec(self, model: RecurrentModel) -> ProbeSpec:
        cfg = model.config
        per_step = sum(len(model.quantities(layer)) + 1 for layer in range(cfg.num_layers))
        size = self.steps * per_step * max(cfg.num_hidden) * cfg.grid_height * cfg.grid_width * 4
        return ProbeSpec(lo=self._lo, hi=self._hi, channel=self._channel, keep_raw=size <= RAW_BUDGET_BYTES)

    def inference(
        self, run: int, *, device: str = "auto", amp: bool = False
    ) -> Generator[StepUpdate | SlotDone, None, None]:
        """Roll out every model over the sequence, one update per step (see the module doc).

        Reads only state fixed when the run started, so it is safe to drive from a thread
        while the main thread keeps handling :meth:`accept`.
        """
        if self.frames is None:
            raise DataError("open a sequence first")
        pre, aft = self.pre, self.aft
        window = self.frames  # fixed for this run, even if the user opens another file meanwhile
        frames = np.asarray(window[: pre + aft])  # only the run's frames are read
        dev = pick_device(device)
        for slot_index, slot in self.models:
            model = slot.model
            cfg = model.config
            if frames.shape[1:] != (cfg.channels, cfg.height, cfg.width):
                raise ShapeError(
                    f"{self.source or 'the sequence'} has frames (C, H, W) = {frames.shape[1:]} but "
                    f"{slot.name} expects {(cfg.channels, cfg.height, cfg.width)}"
                )
            spec = self.probe_spec(model)
            generator = iter_rollout(model, frames, pre, aft, probes=spec, device=dev, amp=amp)
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
                maps = {k: m[:, 0].cpu().numpy() for k, (m, _) in step.probes.items()}
                stats = {k: s[0].cpu().numpy() for k, (_, s) in step.probes.items()}
                diff = frame - window[step.t + 1]
                yield StepUpdate(
                    run,
                    slot_index,
                    step.t,
                    step.steps,
                    frame,
                    self.render(frame),
                    self.render_diff(diff),
                    maps,
                    stats,
                )
            outputs = result.outputs[0]  # (steps, C, H, W)
            yield SlotDone(run, slot_index, result.trace, self.frame_metrics(outputs, window))

    @staticmethod
    def devices() -> list[str]:
        """Devices a user can pick: auto, cpu and every CUDA GPU."""
        return ["auto", "cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]

    def frame_metrics(self, outputs: np.ndarray, window: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Metrics of every predicted frame 1..steps, as arrays over the timeline (NaN at frame 0)."""
        window = self.frames if window is None else window
        assert window is not None
        gt = np.asarray(window[1 : len(outputs) + 1])
        try:
            from mimviewer.metrics import frame_metrics
        except ImportError:  # metrics module not there yet: MSE and MAE only
            values = {
                "mse": ((outputs - gt) ** 2).mean(axis=(1, 2, 3)),
                "mae": np.abs(outputs - gt).mean(axis=(1, 2, 3)),
            }
        else:
            values = frame_metrics(gt, outputs, units=self.units)
        timeline = {}
        for name, per_frame in values.items():
            full = np.full(len(outputs) + 1, np.nan)
            full[1:] = np.asarray(per_frame, float)
            timeline[name] = full
        return timeline

    def accept(self, update: StepUpdate | SlotDone) -> bool:
        """Store an update from the worker (main thread); False when it belongs to an old run."""
        if update.run != self.run_id or self.slots[update.slot] is None:
            return False
        slot = self.slots[update.slot]
        assert slot is not None
        if isinstance(update, SlotDone):
            slot.trace, slot.metrics, slot.finished = update.trace, update.metrics, True
            if update.trace is not None and update.trace.raw:
                self._raw[update.slot] = {k: v[:, 0] for k, v in update.trace.raw.items()}
            self.events.finished.emit(slot=update.slot)
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
        self.events.step.emit(slot=update.slot, t=update.t)
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
            self.events.frame.emit(frame=value)

    def step_of_frame(self, frame: int | None = None) -> int:
        """The network step whose output is frame ``frame`` (step 0 for frame 0)."""
        frame = self._frame if frame is None else frame
        return int(min(max(frame - 1, 0), max(self.steps - 1, 0)))

    # -- display-ready images ------------------------------------------------------------
    def colour_scale(self) -> ColourScale:
        """The one colour scale of GT and predictions (physical units, radar colours for radar)."""
        units = self.units if self.units in colors.UNITS else "intensity"
        scale = colors.color_scale(units)
        bar = scale.colorbar()
        ticks = [(p, label) for p, label in zip(bar.positions, bar.labels, strict=True) if 0.0 <= p <= 1.0]
        if units == "intensity":  # label in the sequence's own values (0..255 for a video), as the readout
            ticks = [(p, f"{self._physical(p):.3g}") for p, _ in ticks]
        title = bar.title if bar.units == "intensity" else f"{bar.title} ({bar.units})"
        return ColourScale(lut=scale.lookup_table(), units=title, ticks=ticks)

    def _physical(self, unit: float) -> float:
        """One model-scale value in the sequence's units."""
        return float(np.asarray(self.to_physical(np.array([unit], np.float32))).reshape(-1)[0])

    def diff_scale(self) -> ColourScale:
        """Prediction - GT on a diverging scale over [-0.5, 0.5] of the model scale."""
        ticks = []
        zero = self._physical(0.0)
        for pos in np.linspace(0.0, 1.0, 5):
            diff = pos - 0.5
            value = self._physical(abs(diff)) - zero
            ticks.append((float(pos), f"{math.copysign(value, diff):+.3g}" if diff else "0"))
        units = "" if self.units == "intensity" else f" ({self.units})"
        return ColourScale(lut=_lut("diverging"), units=f"prediction − GT{units}", ticks=ticks)

    def render(self, frame: np.ndarray) -> np.ndarray:
        """(C, H, W) model scale -> (H, W, 3) uint8 on the shared colour scale (RGB shown as is)."""
        if frame.shape[0] == 3:
            return (np.clip(frame, 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)
        index = (np.clip(frame[0], 0.0, 1.0) * 255).round().astype(np.intp)
        return self.colour_scale_lut()[index]

    def render_diff(self, diff: np.ndarray) -> np.ndarray:
        """(C, H, W) prediction - GT -> (H, W, 3) uint8 on the diverging scale."""
        index = (np.clip(diff.mean(0) + 0.5, 0.0, 1.0) * 255).round().astype(np.intp)
        return _lut("diverging")[index]

    def colour_scale_lut(self) -> np.ndarray:
        cached = getattr(self, "_lut_cache", None)
        if cached is None or cached[0] != self.units:
            cached = (self.units, self.colour_scale().lut)
            self._lut_cache = cached
        return cached[1]

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
        if view == "gt":
            source = self.frames[frame] if frame < self.num_frames else None
        else:
            slot = self.slots[int(view[-1])]
            t = frame - 1
            if slot is None or slot.outputs is None or not 0 <= t < slot.done_steps:
                return None
            source = slot.outputs[t]
            if view.startswith("diff"):
                pred = np.asarray(self.to_physical(source[:, y, x])).mean()
                gt = np.asarray(self.to_physical(self.frames[frame][:, y, x])).mean()
                return float(pred - gt)
        if source is None:
            return None
        return float(np.asarray(self.to_physical(source[:, y, x])).mean())

    # -- internals ------------------------------------------------------------------------
    def available_quantities(self, slot: int = 0) -> list[str]:
        """Every quantity any layer of the model records (plus dH), in the model's order."""
        s = self.slots[slot]
        if s is None:
            return []
        names: list[str] = []
        for layer in range(s.model.config.num_layers):
            for name in (*s.model.quantities(layer), "dH"):
                if name not in names:
                    names.append(name)
        return names

    def default_quantities(self) -> list[str]:
        available = self.available_quantities()
        chosen = [q for q in PREFERRED_QUANTITIES if q in available][:7]
        return chosen or available[:7]

    @property
    def quantities(self) -> list[str]:
        return list(self._quantities)

    @quantities.setter
    def quantities(self, names: list[str]) -> None:
        available = self.available_quantities()
        self._quantities = [q for q in available if q in names]
        self.events.internals.emit()

    @property
    def reduction(self) -> str:
        return self._reduction

    @reduction.setter
    def reduction(self, name: str) -> None:
        if name not in REDUCTIONS:
            raise ValueError(f"unknown reduction {name!r}; known: {', '.join(REDUCTIONS)}")
        self._reduction = name
        self.events.internals.emit()

    @property
    def thresholds(self) -> tuple[float, float]:
        return self._lo, self._hi

    def set_thresholds(self, lo: float, hi: float) -> None:
        """New saturation thresholds: re-reduce the kept raw values, or flag that a re-run is needed."""
        self._lo, self._hi = float(lo), float(hi)
        self._rereduce()

    @property
    def channel(self) -> int:
        return self._channel

    @channel.setter
    def channel(self, value: int) -> None:
        self._channel = max(0, int(value))
        self._rereduce()

    def _rereduce(self) -> None:
        """The cheap reduction of trace.TraceRecorder, again, on the host copies of the raw values."""
        for index, slot in self.models:
            raw = self._raw.get(index)
            if raw is None:
                if slot.done_steps:
                    self.needs_rerun = True
                continue
            for k, values in raw.items():  # (steps, C, *S)
                low = values < self._lo
                high = values > self._hi
                slot.maps[k][:, MAP_REDUCTIONS.index("low")] = low.mean(1)
                slot.maps[k][:, MAP_REDUCTIONS.index("high")] = high.mean(1)
                channel = min(self._channel, values.shape[1] - 1)
                slot.maps[k][:, MAP_REDUCTIONS.index("channel")] = values[:, channel]
                flat = values.reshape(len(values), -1)
                slot.stats[k][:, STAT_NAMES.index("frac_low")] = (flat < self._lo).mean(1)
                slot.stats[k][:, STAT_NAMES.index("frac_high")] = (flat > self._hi).mean(1)
        self.events.internals.emit()

    def num_layers(self, slot: int = 0) -> int:
        s = self.slots[slot]
        return 0 if s is None else s.model.config.num_layers

    def has(self, layer: int, name: str, slot: int = 0) -> bool:
        s = self.slots[slot]
        return s is not None and name in (*s.model.quantities(layer), "dH")

    def heatmap(self, layer: int, name: str, step: int | None = None, slot: int = 0) -> np.ndarray | None:
        """The 2-D map of one quantity at one step under the chosen reduction (None: not computed).

        1-D models record unit vectors: their map is units x steps (time on the x axis).
        """
        s = self.slots[slot]
        k = key(layer, name)
        if s is None or k not in s.maps:
            return None
        step = self.step_of_frame() if step is None else step
        maps = s.maps[k]  # (steps, 4, *S)
        if self._reduction == "saturated":
            per_step = maps[:, 1] + maps[:, 2]
        else:
            per_step = maps[:, MAP_REDUCTIONS.index(self._reduction)]
        if per_step.ndim == 2:  # 1-D family: (steps, U) -> (U, steps) up to the current step
            shown = np.full(per_step.shape[::-1], np.nan, np.float32)
            shown[:, : step + 1] = per_step[: step + 1].T
            return shown
        if step >= s.done_steps:
            return None
        return per_step[step]

    def is_vector(self, layer: int, name: str, slot: int = 0) -> bool:
        """True for the 1-D family's unit vectors (their heatmap is units x steps)."""
        s = self.slots[slot]
        maps = None if s is None else s.maps.get(key(layer, name))
        return maps is not None and maps.ndim == 3

    def heatmap_levels(self, layer: int, name: str, slot: int = 0) -> tuple[float, float]:
        """Colour range of a heatmap: [0, 1] for gates and fractions; otherwise symmetric around 0,
        as wide as the largest value over the whole rollout (small states stay visible)."""
        if self._reduction == "saturated" or (is_gate(name) and self._reduction in ("mean", "channel")):
            return 0.0, 1.0
        s = self.slots[slot]
        k = key(layer, name)
        if s is None or k not in s.maps or not s.done_steps:
            return -1.0, 1.0
        shown = s.maps[k][: s.done_steps, MAP_REDUCTIONS.index(self._reduction)]
        bound = float(np.nanmax(np.abs(shown))) if shown.size else 1.0
        bound = bound if math.isfinite(bound) and bound > 0 else 1.0
        return -bound, bound

    def saturation_curves(self, name: str, slot: int = 0) -> dict[int, np.ndarray]:
        """Per layer: fraction of saturated units of ``name`` at every finished step."""
        s = self.slots[slot]
        if s is None:
            return {}
        curves = {}
        for k, stats in s.stats.items():
            layer, quantity = split_key(k)
            if quantity == name:
                done = stats[: s.done_steps]
                curves[layer] = done[:, STAT_NAMES.index("frac_low")] + done[:, STAT_NAMES.index("frac_high")]
        return dict(sorted(curves.items()))

    def trace(self, slot: int = 0) -> Trace | None:
        """The finished trace with the current thresholds applied (for exports)."""
        s = self.slots[slot]
        if s is None or s.trace is None:
            return None
        t = s.trace
        maps = {k: v[:, :, None] for k, v in s.maps.items()}
        stats = {k: v[:, None] for k, v in s.stats.items()}
        spec = ProbeSpec(lo=self._lo, hi=self._hi, channel=self._channel, eps=t.spec.eps)
        return Trace(maps=maps, stats=stats, spec=spec, pre=t.pre, aft=t.aft)

    # -- exports ---------------------------------------------------------------------------
    def comparison_arrays(self) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
        """(GT of context + future frames, {model name: its aft predicted frames}, pre)."""
        if self.frames is None:
            raise DataError("open a sequence first")
        gt = np.asarray(self.frames[: self.pre + self.aft])
        predictions: dict[str, np.ndarray] = {}
        for index, slot in self.models:
            if slot.outputs is None or not slot.finished:
                raise DataError(f"{slot.name}: inference has not finished yet")
            name = slot.name if slot.name not in predictions else f"{slot.name} ({index + 1})"
            predictions[name] = slot.outputs[-self.aft :].copy()
        return gt.copy(), predictions, self.pre

    def metrics_table(self) -> dict[str, np.ndarray]:
        """Per-frame metrics of every model; column names carry the model's name when there are two."""
        table: dict[str, np.ndarray] = {}
        for _, slot in self.models:
            for name, values in slot.metrics.items():
                table[name if len(self.models) == 1 else f"{slot.name}:{name}"] = values.copy()
        return table

    def export_job(self, kind: str, path: Path, slot: int = 0) -> Callable[[], Path]:
        """A function that writes one export from a snapshot of the results (safe in a thread).

        kind: "gif"/"mp4" (comparison video), "strip" (PNG), "heatmaps" (PNG of the internals
        grid at the current step), "heatmaps_gif" (the grid at every step, GIF/MP4), "metrics"
        (CSV), "gates" (gate statistics CSV/JSON).
        """
        from mimviewer import export

        units = self.units if self.units in colors.UNITS else "intensity"
        if kind in ("gif", "mp4", "strip"):
            gt, predictions, pre = self.comparison_arrays()
            if kind == "strip":
                return lambda: export.write_strip(path, gt, predictions, pre=pre, units=units)
            return lambda: export.write_comparison(path, gt, predictions, pre=pre, units=units)
        if kind == "metrics":
            table = self.metrics_table()
            return lambda: export.write_metrics_csv(path, table)
        trace = self.trace(slot)
        if trace is None:
            raise DataError("no internals recorded yet: let inference finish")
        if kind == "gates":
            return lambda: export.write_trace_stats(path, trace)
        names, reduction = self.quantities, self._reduction
        if kind == "heatmaps":
            step = self.step_of_frame()
            return lambda: export.write_png(path, export.render_heatmap_grid(trace, step, names, reduction))
        if kind == "heatmaps_gif":
            return lambda: _write_animation(
                path, [export.render_heatmap_grid(trace, t, names, reduction) for t in range(trace.steps)]
            )
        raise ValueError(f"unknown export {kind!r}")


def _write_animation(path: Path, images: list[np.ndarray], fps: float = 4) -> Path:
    """RGB images as an animated GIF or MP4 (by suffix), written atomically."""
    import imageio.v2 as imageio

    from mimviewer.export import VIDEO_SUFFIXES, ExportError, atomic_path

    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ExportError(f"{path}: animations are .gif or .mp4, not {suffix or 'no suffix'!r}")
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            writer = imageio.get_writer(tmp, mode="I", duration=1000.0 / fps, loop=0)
        else:
            writer = imageio.get_writer(tmp, fps=fps, codec="libx264", macro_block_size=1)
        with writer:
            for image in images:
                writer.append_data(image)
    return path
