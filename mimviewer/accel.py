"""Speed switches for a rollout: bf16 (``--fast``), TF32 (``--tf32``), CUDA graphs (``--cuda-graph``).

Each switch works where the hardware has it and otherwise says in one line why it is off,
so a command never fails only because it asked to be fast:

* ``fast``: bf16 autocast where the device computes bf16 natively (CUDA GPUs with bf16,
  CPUs with AVX512-BF16/AMX); about 3 significant digits instead of 7.
* ``tf32``: TF32 tensor-core matmuls and convolutions (NVIDIA Ampere and later); a CUDA-only
  process-wide setting of torch, float32 storage with a 10-bit mantissa inside products.
* ``cuda_graph``: the whole rollout, probes included, captured once as one CUDA graph and
  replayed for every batch of the same shape. This works because a rollout has static
  shapes (fixed steps, state sizes and probe buffers, E3D-LSTM's recall keys in one buffer)
  and never synchronises with the host inside the step loop (DESIGN.md, "Built for speed").

Out-of-memory on a device becomes :class:`DeviceMemoryError`, one line the CLI and the GUI
can show, with what to try instead.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch

from mimviewer.errors import MimviewerError
from mimviewer.trace import ProbeSpec, TraceRecorder


class DeviceMemoryError(MimviewerError):
    """The device ran out of memory (the message says how much was asked for and what to try)."""


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


def fast_note(device: torch.device) -> str | None:
    """Why ``--fast`` cannot be on here (None when it can)."""
    if bf16_supported(device):
        return None
    return f"fast mode off: {device} has no native bf16 (needs a bf16 GPU or an AVX512-BF16/AMX CPU); float32"


def set_tf32(enabled: bool, device: torch.device) -> str | None:
    """TF32 matmuls/convolutions on or off for CUDA (process-wide); returns a note when it has no effect."""
    if device.type != "cuda":
        return f"tf32 has no effect on {device}: it is a CUDA (Ampere and later) feature" if enabled else None
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    if enabled and torch.cuda.get_device_capability(device) < (8, 0):
        return f"tf32 has no effect on {torch.cuda.get_device_name(device)}: it needs compute capability 8.0+"
    return None


def cuda_graph_note(device: torch.device) -> str | None:
    """Why a rollout cannot be captured as a CUDA graph on ``device`` (None when it can be tried)."""
    if device.type != "cuda":
        return f"cuda graph off: no CUDA device ({device}); running eagerly"
    if not torch.cuda.is_available():
        return "cuda graph off: CUDA is not available here; running eagerly"
    return None


@contextmanager
def device_memory_errors(what: str, device: torch.device, hint: str = "") -> Iterator[None]:
    """Turn torch's out-of-memory errors into one :class:`DeviceMemoryError` line naming ``what``."""
    try:
        yield
    except torch.OutOfMemoryError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
        if device.type == "cuda":
            torch.cuda.empty_cache()
        advice = hint or "try a smaller --batch-size, fewer probes, or --device cpu"
        raise DeviceMemoryError(
            f"{what}: the {device} device ran out of memory ({first}); {advice}"
        ) from None


def no_autograd(amp: bool):
    """``inference_mode``, except under bf16 autocast: there ``no_grad``, because autocast caches
    the bf16 copy of each weight only outside inference mode (measured: without the cache every
    convolution re-casts its weight, 13% of a bf16 MIM 4x128 rollout on a CPU). Same values."""
    return torch.no_grad() if amp else torch.inference_mode()


def autocast(device: torch.device, amp: bool, *, cache: bool = True):
    """bf16 autocast when ``amp`` (the weight-cast cache must be off inside a CUDA graph capture)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=cache) if amp else nullcontext()


@dataclass
class CapturedRollout:
    """One rollout recorded as a CUDA graph: copy frames into ``frames``, ``replay``, read ``outputs``."""

    graph: torch.cuda.CUDAGraph
    frames: torch.Tensor  # static input (B, pre, C, H, W)
    outputs: torch.Tensor  # static output (B, steps, C, H, W) float32
    recorder: TraceRecorder | None  # its buffers are static too: finish() reads them after a replay

    def replay(self, frames: torch.Tensor) -> None:
        self.frames.copy_(frames)
        self.graph.replay()


def _run_into(
    model: torch.nn.Module,
    frames: torch.Tensor,
    pre: int,
    aft: int,
    recorder: TraceRecorder | None,
    amp: bool,
) -> torch.Tensor:
    """The rollout body, outputs written into one preallocated buffer (static shapes)."""
    b, _, c, h, w = frames.shape
    outputs = torch.empty((b, pre + aft - 1, c, h, w), device=frames.device, dtype=torch.float32)
    kwargs = {"probe": recorder} if recorder is not None else {}
    with torch.inference_mode(), autocast(frames.device, amp, cache=False):
        for t, frame in enumerate(model.generate(frames, pre, aft, **kwargs)):
            outputs[:, t] = frame
    return outputs


_captured: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {key: CapturedRollout}


def captured_rollout(
    model: torch.nn.Module, frames: torch.Tensor, pre: int, aft: int, spec: ProbeSpec | None, amp: bool
) -> CapturedRollout:
    """The model's graph for this shape and these probes, captured on first use (warm-up on a side
    stream first, as CUDA graphs require); raises whatever capture raises."""
    key = (tuple(frames.shape), frames.device, pre, aft, spec, amp)
    graphs = _captured.setdefault(model, {})
    if key in graphs:
        return graphs[key]
    steps = pre + aft - 1
    static = frames.detach().clone()
    side = torch.cuda.Stream(frames.device)
    side.wait_stream(torch.cuda.current_stream(frames.device))
    with torch.cuda.stream(side):
        for _ in range(2):  # lazy initialisation, cuDNN algorithm choice: outside the capture
            _run_into(
                model,
                static,
                pre,
                aft,
                TraceRecorder(spec, steps, type(model).quantity_kinds) if spec else None,
                amp,
            )
    torch.cuda.current_stream(frames.device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    recorder = TraceRecorder(spec, steps, type(model).quantity_kinds) if spec is not None else None
    with torch.cuda.graph(graph):
        outputs = _run_into(model, static, pre, aft, recorder, amp)
    graphs[key] = CapturedRollout(graph, static, outputs, recorder)
    return graphs[key]
