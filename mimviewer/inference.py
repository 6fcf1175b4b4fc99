"""Run a model over a sequence: device choice, batching, streaming per step, traces.

``iter_rollout`` is a generator that yields one :class:`StepResult` per network step, so
a GUI worker can show frames as they arrive and cancel between steps (stop iterating);
``rollout`` drains it. Both run the same code on CPU and GPU.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from mimviewer.data.normalise import normalise
from mimviewer.errors import MimviewerError, ShapeError
from mimviewer.limits import shorten
from mimviewer.nets.base import RecurrentModel
from mimviewer.trace import ProbeSpec, Trace, TraceRecorder


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


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is fast on ``device``: CUDA GPUs with bf16, CPUs with AVX512-BF16/AMX.

    bf16 halves the convolutions' cost where the hardware has it (measured 2x per conv on an
    AVX512-BF16 CPU) at the price of ~3 significant digits: an opt-in, never the default.
    """
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


@dataclass
class StepResult:
    """One network step: ``frame`` (B, C, H, W, on the device) predicts frame ``t + 1``."""

    t: int
    pre: int
    aft: int
    frame: torch.Tensor
    probes: dict[str, tuple[torch.Tensor, torch.Tensor]]  # key -> (maps (4,B,*S), stats (B,6))

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


def iter_rollout(
    model: RecurrentModel,
    frames: np.ndarray | torch.Tensor,
    pre: int | None = None,
    aft: int | None = None,
    *,
    probes: ProbeSpec | None = None,
    device: torch.device | str | None = None,
    amp: bool = False,
) -> Generator[StepResult, None, Rollout]:
    """Yield every step as it finishes; the generator's return value is the :class:`Rollout`."""
    cfg = model.config
    pre = cfg.pre if pre is None else pre
    aft = cfg.aft if aft is None else aft
    if pre < 1 or aft < 1:
        raise ShapeError(f"pre and aft must be >= 1, got pre={pre}, aft={aft}")
    device = next(model.parameters()).device if device is None else torch.device(device)
    model.to(device).eval()
    x = as_frames(frames).to(device)
    steps = pre + aft - 1
    recorder = TraceRecorder(probes, steps) if probes is not None else None
    if amp and not bf16_supported(device):
        raise MimviewerError(f"bf16 is not supported on {device} here; run without amp/--bf16")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp else nullcontext()
    outputs: list[torch.Tensor] = []
    with torch.inference_mode(), autocast:
        kwargs = {"probe": recorder} if recorder is not None else {}
        for t, frame in enumerate(model.generate(x, pre, aft, **kwargs)):
            frame = frame.float()
            outputs.append(frame)
            yield StepResult(t, pre, aft, frame, recorder.step_slice(t) if recorder else {})
    stacked = torch.stack(outputs, 1).cpu().numpy()
    trace = recorder.finish(pre, aft) if recorder else None
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
) -> Rollout:
    """Run the whole rollout and return the :class:`Rollout`."""
    generator = iter_rollout(model, frames, pre, aft, probes=probes, device=device, amp=amp)
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value
