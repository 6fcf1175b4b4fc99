"""What a rollout produces, as plain data: per-slot results and the updates the worker sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mimviewer.errors import MimviewerError

if TYPE_CHECKING:  # torch-backed types: the window starts before torch is imported
    from mimviewer.nets.base import RecurrentModel
    from mimviewer.trace import Trace

if TYPE_CHECKING:
    from mimviewer.viewmodel.delta import DeltaSummary


class InferenceError(MimviewerError):
    """The rollout failed on the device (the message says which model and why)."""


class OutOfDeviceMemory(InferenceError):
    """The device ran out of memory; running on the CPU (or a smaller batch) may work."""


@dataclass
class ModelSlot:
    """One model and what its rollout produced so far (numpy on the host)."""

    model: RecurrentModel
    name: str  # label in the views, e.g. the checkpoint's file name
    source: str  # where it came from (path, or "random weights")
    outputs: np.ndarray | None = None  # (steps, C, H, W): output t predicts frame t+1
    images: list[np.ndarray | None] = field(default_factory=list)  # per step, display RGB (H, W, 3)
    diff_images: list[np.ndarray | None] = field(default_factory=list)
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (steps, 4, *S), NaN: not computed
    stats: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (steps, 6), NaN: not computed
    valid: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (steps,) bool: the step computed it
    done_steps: int = 0
    trace: Trace | None = None  # the whole trace, once finished
    metrics: dict[str, np.ndarray] = field(default_factory=dict)  # per frame (T,), NaN where none
    finished: bool = False
    # what-if: the frames this slot reads instead of the sequence's (T, C, H, W), and the slot
    # whose prediction its difference view is taken against (None: the ground truth)
    inputs: np.ndarray | None = None
    reference: int | None = None
    reference_name: str = "original"  # the reference slot's prediction, as the difference view's title says
    # delta inference (viewmodel.delta): the threshold this slot runs with (None: exact), and what it skipped
    delta_eps: float | None = None
    delta: DeltaSummary | None = None

    def clear(self) -> None:
        """Forget every result (the model stays)."""
        self.outputs, self.images, self.diff_images, self.delta = None, [], [], None
        self.maps, self.stats, self.valid, self.trace, self.metrics = {}, {}, {}, None, {}
        self.done_steps, self.finished = 0, False


@dataclass
class StepUpdate:
    """What the worker thread sends for one finished network step."""

    run: int
    slot: int
    t: int
    steps: int
    frame: np.ndarray  # (C, H, W) model scale
    image: np.ndarray  # (H, W, 3) uint8, drawn by the session's FrameRenderer
    diff_image: np.ndarray | None  # (H, W, 3) uint8, prediction - GT; None: no truth (not observed yet)
    maps: dict[str, np.ndarray]  # key -> (4, *S) for batch item 0 (NaN where the step computed nothing)
    stats: dict[str, np.ndarray]  # key -> (6,)
    valid: dict[str, bool]  # key -> whether this step computed the quantity


@dataclass
class SlotDone:
    """Sent when one model's rollout is complete."""

    run: int
    slot: int
    trace: Trace | None
    metrics: dict[str, np.ndarray]
    delta: DeltaSummary | None = None  # a delta slot's skipped fractions and error against exact
