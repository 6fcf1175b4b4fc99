"""Why did the model predict that? Attribution of a predicted region to the context pixels.

The question "how much does each pixel of each context frame drive the predicted values in
this region of frame K" is answered by Captum, PyTorch's attribution library (no hand-made
gradients): :class:`RegionOutput` wraps any registered architecture as a function from the
context frames ``(B, pre, C, H, W)`` to one number per sequence, the sum of predicted frame
K inside a mask, and Captum's ``Saliency`` (plain gradient), ``InputXGradient`` and
``IntegratedGradients`` attribute that number to every context pixel.

* The model runs in eval mode with the probes off (``NO_PROBE``), on whatever device it is
  on, in the dtype of its weights (float64 for exactness checks); its mode is restored after.
* Frame numbers count from 0 as everywhere: step t reads frame t and predicts frame t + 1,
  so frame K (1 <= K < pre + aft) is the output of step K - 1. A context frame K < pre is the
  model's one-step forecast of it from frames 0 .. K-1.
* Integrated gradients integrate the gradient along the straight path from a baseline
  (zeros, every frame replaced by the last context frame, or each frame blurred) to the
  input. The path is cut into segments and Captum integrates each with Gauss-Legendre
  points; the sum over segments is the composite rule, so progress and Cancel come between
  segments without touching Captum's internals. Completeness (the attributions sum to
  F(input) - F(baseline)) holds up to the quadrature error; ``Attribution.completeness_gap``
  reports it.

:func:`memory_paths` asks where the gradient travels: the norm of d(region sum)/d(state) for
each layer's temporal memory C, spatiotemporal memory M, MIM's N and S, PredRNN++'s highway
Z, at every step, taken with ``torch.autograd.grad`` on the very state tensors the cells
record through the probe interface.

:func:`iter_attribution` is a generator that yields :class:`Progress` between pieces of work
and returns the :class:`Attribution` (a GUI worker stops by not resuming it).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

# The choices and the error live in a torch-free module (the window lists them before torch is
# loaded); they are re-exported here, where they have always been imported from.
from mimviewer.attribution_choices import (
    BASELINES,
    DEFAULT_BLUR_SIGMA,
    DEFAULT_IG_STEPS,
    MEMORY_PATHS,
    METHODS,
    AttributionError,
)
from mimviewer.errors import ShapeError
from mimviewer.inference import run_to_end
from mimviewer.nets.base import RecurrentModel
from mimviewer.trace import NO_PROBE, Probe


# -- what is asked --------------------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    """A pixel rectangle [x0, x1) x [y0, y1) of a frame (x: column, y: row)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def parse(cls, text: str) -> Region:
        """'x0,y0,x1,y1' (pixels, x1 and y1 exclusive)."""
        try:
            x0, y0, x1, y1 = (int(v) for v in text.split(","))
        except ValueError:
            raise AttributionError(f"a region is x0,y0,x1,y1 in pixels, got {text!r}") from None
        return cls(x0, y0, x1, y1)

    def mask(self, height: int, width: int) -> np.ndarray:
        """(H, W) bool; the rectangle must lie inside the frame and hold at least one pixel."""
        if not (0 <= self.x0 < self.x1 <= width and 0 <= self.y0 < self.y1 <= height):
            raise AttributionError(
                f"region x {self.x0}..{self.x1}, y {self.y0}..{self.y1} is empty or outside the "
                f"{width}x{height} frame (x0 < x1 <= {width}, y0 < y1 <= {height})"
            )
        mask = np.zeros((height, width), bool)
        mask[self.y0 : self.y1, self.x0 : self.x1] = True
        return mask


@dataclass(frozen=True)
class AttributionRequest:
    """What to attribute and how."""

    frame: int  # the predicted frame K whose region is explained (absolute, from 0)
    mask: np.ndarray  # (H, W) bool: the region of frame K (any shape: rectangle, brush, whole frame)
    method: str = "ig"  # a key of METHODS
    baseline: str = "zeros"  # a key of BASELINES (integrated gradients only)
    ig_steps: int = DEFAULT_IG_STEPS  # gradient evaluations along the path
    ig_chunk: int = 4  # evaluations per segment: progress and Cancel come between segments
    blur_sigma: float = DEFAULT_BLUR_SIGMA  # pixels, for the "blur" baseline
    memory: bool = True  # also compute the memory-path gradient norms


@dataclass
class MemoryPaths:
    """Gradient norms of the region sum w.r.t. each memory state.

    ``norms[t, l, p]``: L2 norm of d(region)/d(state) for path ``paths[p]`` of layer l at
    step t; NaN where the step does not compute the state (steps after frame K - 1, MIM-N
    at step 0, E3D-LSTM's resting steps) or the layer has no such memory.
    """

    norms: np.ndarray  # (steps, layers, paths) float64
    paths: tuple[str, ...]

    def shares(self) -> np.ndarray:
        """Each norm as a fraction of all memory-state norms at that step (NaN stays NaN)."""
        totals = np.nansum(self.norms, axis=(1, 2), keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, self.norms / np.where(totals > 0, totals, 1.0), np.nan)

    def rows(self) -> list[tuple[int, str]]:
        """(layer, path) pairs that hold a value at some step, in layer then path order."""
        layers = self.norms.shape[1]
        return [
            (layer, name)
            for layer in range(layers)
            for p, name in enumerate(self.paths)
            if np.isfinite(self.norms[:, layer, p]).any()
        ]

    def row_matrix(self, shares: bool = False) -> tuple[list[str], np.ndarray]:
        """Labels ("layer 0 C", ...) and the (rows, steps) matrix for a path x step plot."""
        values = self.shares() if shares else self.norms
        rows = self.rows()
        labels = [f"layer {layer} {name}" for layer, name in rows]
        matrix = np.array([values[:, layer, self.paths.index(name)] for layer, name in rows])
        return labels, matrix.reshape(len(rows), self.norms.shape[0])


@dataclass
class Attribution:
    """The answer: attribution of every context pixel, totals per frame, and where it came from."""

    maps: np.ndarray  # (pre, C, H, W) in the model's dtype: attribution of each context pixel
    frame: int
    mask: np.ndarray  # (H, W) bool
    method: str
    baseline: str | None  # None unless integrated gradients
    target: float  # the region sum F(context)
    baseline_target: float | None = None  # F(baseline) (integrated gradients)
    memory: MemoryPaths | None = None
    meta: dict[str, str] = field(default_factory=dict)  # model, input, device ...

    @property
    def pre(self) -> int:
        return self.maps.shape[0]

    @property
    def frame_totals(self) -> np.ndarray:
        """(pre,) signed sum of the attribution of each context frame (which past frames matter)."""
        return self.maps.reshape(self.pre, -1).sum(1, dtype=np.float64)

    @property
    def frame_abs_totals(self) -> np.ndarray:
        """(pre,) sum of |attribution| of each context frame."""
        return np.abs(self.maps).reshape(self.pre, -1).sum(1, dtype=np.float64)

    @property
    def completeness_gap(self) -> float | None:
        """sum(attributions) - (F(input) - F(baseline)) for integrated gradients, else None."""
        if self.baseline_target is None:
            return None
        return float(self.frame_totals.sum() - (self.target - self.baseline_target))

    def describe(self) -> str:
        what = METHODS[self.method].split(" (")[0]
        base = f", baseline {self.baseline}" if self.baseline else ""
        return f"{what}{base}: region of frame {self.frame} ({int(self.mask.sum())} px)"

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write every array and the request as a .npz (no pickles), atomically."""
        from mimviewer.atomic import atomic_file

        arrays: dict[str, np.ndarray] = {
            "maps": self.maps,
            "frame_totals": self.frame_totals,
            "frame_abs_totals": self.frame_abs_totals,
            "mask": self.mask,
            "frame": np.array(self.frame),
            "method": np.array(self.method),
            "baseline": np.array(self.baseline or ""),
            "target": np.array(self.target),
            "baseline_target": np.array(np.nan if self.baseline_target is None else self.baseline_target),
            "meta_keys": np.array(list(self.meta), dtype=str),
            "meta_values": np.array(list(self.meta.values()), dtype=str),
        }
        if self.memory is not None:
            arrays["memory_norms"] = self.memory.norms
            arrays["memory_paths"] = np.array(self.memory.paths, dtype=str)
        path = Path(path)
        with atomic_file(path) as f:
            np.savez_compressed(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Attribution:
        try:
            with np.load(path, allow_pickle=False) as f:
                memory = None
                if "memory_norms" in f.files:
                    memory = MemoryPaths(f["memory_norms"], tuple(str(p) for p in f["memory_paths"]))
                baseline_target = float(f["baseline_target"])
                return cls(
                    maps=f["maps"],
                    frame=int(f["frame"]),
                    mask=f["mask"],
                    method=str(f["method"]),
                    baseline=str(f["baseline"]) or None,
                    target=float(f["target"]),
                    baseline_target=None if math.isnan(baseline_target) else baseline_target,
                    memory=memory,
                    meta=dict(zip(map(str, f["meta_keys"]), map(str, f["meta_values"]), strict=True)),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise AttributionError(f"{path}: not an attribution file ({exc})") from None


@dataclass(frozen=True)
class Progress:
    """One piece of work done: ``done`` of ``total``, and what it was."""

    done: int
    total: int
    text: str


# -- the function Captum explains ----------------------------------------------------------
class RegionOutput(nn.Module):
    """Context frames (B, pre, C, H, W) -> (B,) sum of predicted frame ``frame`` inside ``mask``.

    Rolls the model out only as far as frame ``frame`` (step ``frame - 1``), probes off.
    """

    def __init__(self, model: RecurrentModel, frame: int, mask: torch.Tensor, probe: Probe = NO_PROBE):
        super().__init__()
        self.model = model
        self.frame = frame
        self.probe = probe
        self.register_buffer("mask", mask, persistent=False)  # (H, W), the model's dtype

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        pre = context.shape[1]
        aft = max(1, self.frame - pre + 1)  # steps = pre + aft - 1 >= frame
        output = None
        for t, out in enumerate(self.model.generate(context, pre, aft, probe=self.probe)):
            if t == self.frame - 1:
                output = out  # (B, C, H, W) predicts frame `frame`
                break
        return (output * self.mask).sum((1, 2, 3))


def check_request(model: RecurrentModel, context: torch.Tensor, request: AttributionRequest) -> None:
    """Raise :class:`AttributionError` naming what is wrong with ``request`` for this model and input."""
    if request.method not in METHODS:
        raise AttributionError(f"unknown attribution method {request.method!r}; known: {', '.join(METHODS)}")
    if request.method == "ig" and request.baseline not in BASELINES:
        raise AttributionError(f"unknown baseline {request.baseline!r}; known: {', '.join(BASELINES)}")
    if context.ndim != 5 or context.shape[0] != 1:
        raise ShapeError(
            f"attribution explains one sequence: context (1, pre, C, H, W), got {tuple(context.shape)}"
        )
    model.check_frames(context, 1)
    cfg = model.config
    if request.frame < 1:
        raise AttributionError(f"frame {request.frame}: frame 0 is never predicted (frames count from 0)")
    mask = np.asarray(request.mask)
    if mask.shape != (cfg.height, cfg.width) or mask.dtype != bool:
        raise AttributionError(
            f"the region mask must be bool ({cfg.height}, {cfg.width}), got {mask.dtype} {mask.shape}"
        )
    if not mask.any():
        raise AttributionError("the region is empty: draw at least one pixel")
    if request.ig_steps < 1 or request.ig_chunk < 1:
        raise AttributionError(
            f"integrated gradients need >= 1 step, got {request.ig_steps} (chunk {request.ig_chunk})"
        )
    if request.blur_sigma <= 0:
        raise AttributionError(f"the blur baseline's sigma must be > 0 pixels, got {request.blur_sigma}")


def blurred(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of every (C, H, W) frame of (..., C, H, W), reflecting at the borders."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=frames.dtype, device=frames.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    *lead, c, h, w = frames.shape
    x = frames.reshape(-1, 1, h, w)
    mode = "reflect" if radius < min(h, w) else "replicate"
    x = torch.nn.functional.pad(x, (radius, radius, 0, 0), mode=mode)
    x = torch.nn.functional.conv2d(x, kernel.view(1, 1, 1, -1))  # along rows
    x = torch.nn.functional.pad(x, (0, 0, radius, radius), mode=mode)
    x = torch.nn.functional.conv2d(x, kernel.view(1, 1, -1, 1))  # along columns
    return x.reshape(*lead, c, h, w)


def make_baseline(context: torch.Tensor, name: str, blur_sigma: float = DEFAULT_BLUR_SIGMA) -> torch.Tensor:
    """The integrated-gradients starting point for context (B, pre, C, H, W); see :data:`BASELINES`."""
    if name == "zeros":
        return torch.zeros_like(context)
    if name == "last":
        return context[:, -1:].expand_as(context).clone()
    if name == "blur":
        return blurred(context, blur_sigma)
    raise AttributionError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")


class _EvalNoGradParams:
    """Eval mode and frozen weights for the duration (restored after): only inputs get gradients."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self) -> None:
        self.training = self.model.training
        self.grads = [p.requires_grad for p in self.model.parameters()]
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.training)
        for p, g in zip(self.model.parameters(), self.grads, strict=True):
            p.requires_grad_(g)


def _model_tensor(model: RecurrentModel, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Context as (1, pre, C, H, W) on the model's device, in its dtype."""
    from mimviewer.inference import as_frames

    weight = next(model.parameters())
    return as_frames(frames).to(device=weight.device, dtype=weight.dtype)


# -- the attribution itself ------------------------------------------------------------------
def iter_attribution(
    model: RecurrentModel, context: np.ndarray | torch.Tensor, request: AttributionRequest
) -> Generator[Progress, None, Attribution]:
    """Attribute predicted frame ``request.frame``'s region to ``context`` (the ``pre`` context frames).

    Yields :class:`Progress` after each piece of work; returns the :class:`Attribution`.
    Runs where the model's weights are; move the model first to choose CPU or GPU.
    """
    from captum.attr import InputXGradient, IntegratedGradients, Saliency

    x = _model_tensor(model, context)
    check_request(model, x, request)
    mask = torch.as_tensor(np.asarray(request.mask), device=x.device).to(x.dtype)
    forward = RegionOutput(model, request.frame, mask)
    method = request.method
    segments = math.ceil(request.ig_steps / request.ig_chunk) if method == "ig" else 1
    total = segments + 1 + int(request.memory)
    baseline_target = None
    with _EvalNoGradParams(model), torch.enable_grad():
        with torch.no_grad():
            target = float(forward(x)[0])
        yield Progress(1, total, f"region sum of frame {request.frame}: {target:.4g}")
        leaf = x.detach().requires_grad_(True)  # Captum would set it itself, with a warning
        if method == "saliency":
            maps = Saliency(forward).attribute(leaf, abs=False)
            yield Progress(2, total, "gradient done")
        elif method == "ixg":
            maps = InputXGradient(forward).attribute(leaf)
            yield Progress(2, total, "gradient x input done")
        else:
            start = make_baseline(x, request.baseline, request.blur_sigma)
            with torch.no_grad():
                baseline_target = float(forward(start)[0])
            ig = IntegratedGradients(forward)
            maps = torch.zeros_like(x)
            done_steps = 0
            for j in range(segments):
                # segment j of the straight path start -> x, integrated by Captum (Gauss-Legendre)
                n = min(request.ig_chunk, request.ig_steps - done_steps)
                lo = start + (j / segments) * (x - start)
                hi = x if j == segments - 1 else start + ((j + 1) / segments) * (x - start)
                maps = maps + ig.attribute(hi, baselines=lo, n_steps=n, internal_batch_size=n)
                done_steps += n
                yield Progress(2 + j, total, f"integrated gradients: {done_steps}/{request.ig_steps} steps")
    memory = None
    if request.memory:
        memory = memory_paths(model, x, request.frame, np.asarray(request.mask))
        yield Progress(total, total, "memory paths done")
    return Attribution(
        maps=maps[0].detach().cpu().numpy(),  # the model's dtype: float64 sums stay exact
        frame=request.frame,
        mask=np.asarray(request.mask, bool).copy(),
        method=method,
        baseline=request.baseline if method == "ig" else None,
        target=target,
        baseline_target=baseline_target,
        memory=memory,
    )


def attribute(
    model: RecurrentModel, context: np.ndarray | torch.Tensor, request: AttributionRequest
) -> Attribution:
    """:func:`iter_attribution` run to the end."""
    return run_to_end(iter_attribution(model, context, request))


# -- memory paths -----------------------------------------------------------------------------
class StateProbe(Probe):
    """Keeps the memory states the cells record (with their autograd history), per step.

    A cell may record a reshaped view of its state (the 1-D family's ``(B, 1, U)``, E3D's
    window folded into channels); the view itself is not on the path to the output, so
    the probe keeps the tensor it views (same elements), which is.
    """

    enabled = True

    def __init__(self, names: tuple[str, ...] = tuple(MEMORY_PATHS)):
        self.names = names
        self.t = 0
        self.states: dict[tuple[int, int, str], torch.Tensor] = {}

    def begin_step(self, t: int) -> None:
        self.t = t

    def record(self, layer: int, name: str, value: torch.Tensor) -> None:
        if name not in self.names:
            return
        base = value._base
        if base is not None and base.numel() == value.numel():
            value = base
        self.states[(self.t, layer, name)] = value


def memory_paths(
    model: RecurrentModel, context: np.ndarray | torch.Tensor, frame: int, mask: np.ndarray
) -> MemoryPaths:
    """Norm of d(region sum of frame ``frame``)/d(state) for every memory state of every layer and step."""
    x = _model_tensor(model, context)
    probe = StateProbe()
    mask_t = torch.as_tensor(np.asarray(mask), device=x.device).to(x.dtype)
    forward = RegionOutput(model, frame, mask_t, probe=probe)
    with _EvalNoGradParams(model), torch.enable_grad():
        x = x.detach().requires_grad_(True)  # so that every state depending on the input has a history
        output = forward(x).sum()
        keys = [k for k, v in probe.states.items() if v.requires_grad]
        grads = torch.autograd.grad(output, [probe.states[k] for k in keys], allow_unused=True)
    paths = tuple(MEMORY_PATHS)
    steps = max(x.shape[1] + model.config.aft - 1, frame)  # the rollout's steps, NaN after frame - 1
    norms = np.full((steps, model.config.num_layers, len(paths)), np.nan)
    for (t, layer, name), grad in zip(keys, grads, strict=True):
        # a state with a history but no path to frame K (e.g. M of the top layer at its last step)
        norms[t, layer, paths.index(name)] = 0.0 if grad is None else float(torch.linalg.vector_norm(grad))
    return MemoryPaths(norms, paths)
