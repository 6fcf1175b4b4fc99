"""Run a model over a sequence: device choice, batching, streaming per step, traces.

``iter_rollout`` is a generator that yields one :class:`StepResult` per network step, so
a GUI worker can show frames as they arrive and cancel between steps (stop iterating);
``rollout`` drains it. Both run the same code on CPU and GPU; the step outputs go into one
buffer allocated before the first step (static shapes). ``rollout(..., cuda_graph=True)``
replays the whole rollout as one CUDA graph where it can (:mod:`mimviewer.accel`) and
otherwise runs eagerly, saying why in ``Rollout.notes``. Kept raw tensors are checked
against a memory budget before the first step (:mod:`mimviewer.memory`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from mimviewer.accel import autocast, bf16_supported, captured_rollout, cuda_graph_note, no_autograd
from mimviewer.data.normalise import normalise
from mimviewer.errors import MimviewerError, ShapeError
from mimviewer.limits import shorten
from mimviewer.memory import RAW_BUDGET_BYTES, check_raw_budget
from mimviewer.nets.base import RecurrentModel
from mimviewer.trace import HostStep, ProbeSpec, Trace, TraceRecorder

__all__ = ["Rollout", "StepResult", "as_frames", "bf16_supported", "iter_rollout", "pick_device", "rollout"]


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> the first CUDA device if there is one, else CPU; 'cpu', 'cuda', 'cuda:1' as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise MimviewerError(f"unknown device {shorten(name)} (use auto, cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):  # meta computes nothing; mps, xpu, ... are not supported
        raise MimviewerError(
            f"device {shorten(name)} is not supported by mimviewer (use auto, cpu, cuda or cuda:N)"
        )
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MimviewerError(f"device {name!r} asked for, but no CUDA GPU is available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MimviewerError(f"device {name!r} does not exist: {torch.cuda.device_count()} GPU(s) here")
    return device


@dataclass
class StepResult:
    """One network step: ``frame`` (B, C, H, W, on the device) predicts frame ``t + 1``."""

    t: int
    pre: int
    aft: int
    frame: torch.Tensor
    recorder: TraceRecorder | None = None

    @property
    def probes(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """key -> (maps (4,B,*S), stats (B,6)) of this step, on the device."""
        return {} if self.recorder is None else self.recorder.step_slice(self.t)

    def host_probes(self, sample: slice | int = slice(None)) -> HostStep:
        """This step's maps and statistics as numpy, in one packed device-to-host copy.

        The GUI path: one copy per step (pinned, non-blocking on CUDA) instead of one
        synchronising copy per quantity. ``sample`` picks batch items (int: that one only).
        """
        if self.recorder is None:
            return HostStep({}, {}, {})
        return self.recorder.host_step(self.t, sample)

    @property
    def steps(self) -> int:
        return self.pre + self.aft - 1

    @property
    def is_prediction(self) -> bool:
        """True when the step predicts a frame beyond the context (t + 1 >= pre)."""
        return self.t + 1 >= self.pre


@dataclass
class Rollout:
    """Result of a rollout: the predicted frames and, when asked, the trace."""

    prediction: np.ndarray  # (B, aft, C, H, W) float32
    outputs: np.ndarray  # (B, pre+aft-1, C, H, W): every step's output (t predicts t+1)
    trace: Trace | None
    pre: int
    aft: int
    notes: list[str] = field(default_factory=list)  # one line each: a speed switch that was off, and why


def as_frames(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Accept (B,T,C,H,W), (T,C,H,W) or (T,H,W). Arrays go through the one input rule
    (:func:`mimviewer.data.normalise`); tensors are taken as model scale (uint8 divided by 255)."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(normalise(frames, "frames")[0]))
    tensor = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    if tensor.ndim == 3:
        tensor = tensor[:, None]
    if tensor.ndim == 4:
        tensor = tensor[None]
    if tensor.ndim != 5:
        raise ShapeError(
            f"expected frames (N,T,C,H,W), (T,C,H,W) or (T,H,W), got shape {tuple(tensor.shape)}"
        )
    return tensor


def _prepare(
    model: RecurrentModel,
    frames: np.ndarray | torch.Tensor,
    pre: int | None,
    aft: int | None,
    device: torch.device | str | None,
    amp: bool,
) -> tuple[int, int, torch.device, torch.Tensor]:
    cfg = model.config
    pre = cfg.pre if pre is None else pre
    aft = cfg.aft if aft is None else aft
    if pre < 1 or aft < 1:
        raise ShapeError(f"pre and aft must be >= 1, got pre={pre}, aft={aft}")
    device = next(model.parameters()).device if device is None else torch.device(device)
    model.to(device).eval()
    if amp and not bf16_supported(device):
        raise MimviewerError(f"bf16 is not supported on {device} here; run without amp/--bf16")
    return pre, aft, device, as_frames(frames).to(device)


Y = TypeVar("Y")  # what a job generator yields
R = TypeVar("R")  # what it returns


def run_to_end(generator: Generator[Y, Any, R], each: Callable[[Y], Any] | None = None) -> R:
    """Run a job generator (rollout, forecast, attribution) to its end and return its return value.

    ``each``: called with every value it yields (e.g. to print progress); the window's workers
    run the same generators step by step instead.
    """
    while True:
        try:
            step = next(generator)
        except StopIteration as stop:
            return stop.value
        if each is not None:
            each(step)


def iter_rollout(
    model: RecurrentModel,
    frames: np.ndarray | torch.Tensor,
    pre: int | None = None,
    aft: int | None = None,
    *,
    probes: ProbeSpec | None = None,
    device: torch.device | str | None = None,
    amp: bool = False,
    recorder: TraceRecorder | None = None,
    raw_budget: int | None = RAW_BUDGET_BYTES,
) -> Generator[StepResult, None, Rollout]:
    """Yield every step as it finishes; the generator's return value is the :class:`Rollout`.

    ``recorder``: a TraceRecorder (subclass) to record with instead of one made from ``probes``.
    ``raw_budget``: bytes that kept raw tensors plus the rollout state may take (None: no limit).
    """
    pre, aft, device, x = _prepare(model, frames, pre, aft, device, amp)
    steps = pre + aft - 1
    if recorder is None and probes is not None:
        recorder = TraceRecorder(probes, steps, type(model).quantity_kinds)
    if recorder is not None:
        check_raw_budget(model, recorder.spec, x.shape[0], pre, aft, raw_budget)
    b, _, c, h, w = x.shape
    outputs = torch.empty((b, steps, c, h, w), device=device, dtype=torch.float32)  # filled step by step
    with no_autograd(amp), autocast(device, amp):
        kwargs = {"probe": recorder} if recorder is not None else {}
        for t, frame in enumerate(model.generate(x, pre, aft, **kwargs)):
            outputs[:, t] = frame  # float32, as frame.float() would give
            yield StepResult(t, pre, aft, outputs[:, t], recorder)
    return _finished(outputs, recorder, pre, aft)


def _finished(outputs: torch.Tensor, recorder: TraceRecorder | None, pre: int, aft: int) -> Rollout:
    """The :class:`Rollout` of a finished run (eager or CUDA graph): outputs to numpy, trace closed."""
    stacked = outputs.cpu().numpy()
    trace = recorder.finish(pre, aft) if recorder is not None else None
    return Rollout(prediction=stacked[:, -aft:], outputs=stacked, trace=trace, pre=pre, aft=aft)


def rollout(
    model: RecurrentModel,
    frames: np.ndarray | torch.Tensor,
    pre: int | None = None,
    aft: int | None = None,
    *,
    probes: ProbeSpec | None = None,
    device: torch.device | str | None = None,
    amp: bool = False,
    recorder: TraceRecorder | None = None,
    raw_budget: int | None = RAW_BUDGET_BYTES,
    cuda_graph: bool = False,
) -> Rollout:
    """Run the whole rollout and return the :class:`Rollout`.

    ``cuda_graph``: capture the rollout (probes included) as one CUDA graph on first use for
    this shape and replay it; where that cannot work (no CUDA, capture fails) the rollout runs
    eagerly and ``Rollout.notes`` says why in one line.
    """
    notes: list[str] = []
    if cuda_graph:
        pre, aft, dev, x = _prepare(model, frames, pre, aft, device, amp)
        note = cuda_graph_note(dev)
        if note is None and recorder is not None:
            note = "cuda graph off: a custom recorder cannot be captured; running eagerly"
        if note is None:
            if probes is not None:
                check_raw_budget(model, probes, x.shape[0], pre, aft, raw_budget)
            try:
                captured = captured_rollout(model, x, pre, aft, probes, amp)
            except RuntimeError as exc:  # capture refuses some ops/devices: run eagerly instead
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                note = f"cuda graph off: capture failed ({first}); running eagerly"
            else:
                captured.replay(x)
                return _finished(captured.outputs, captured.recorder, pre, aft)
        notes.append(note)
    generator = iter_rollout(
        model,
        frames,
        pre,
        aft,
        probes=probes,
        device=device,
        amp=amp,
        recorder=recorder,
        raw_budget=raw_budget,
    )
    result = run_to_end(generator)
    result.notes.extend(notes)
    return result
