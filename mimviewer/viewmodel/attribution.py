"""The window's attribution: what the user asks (method, baseline, region, frame) and what it shows.

The job (:func:`attribution_job`) runs :func:`mimviewer.attribution.iter_attribution` on the
main model in a worker thread and draws everything the panel shows once, there: each context
frame with the attribution blended over it, the attribution alone, the per-frame totals and
the memory path x step matrix. The panel then only swaps images while the user scrubs.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mimviewer.attribution_choices import BASELINES, DEFAULT_IG_STEPS, METHODS, AttributionError
from mimviewer.errors import DataError
from mimviewer.render import ColourScale, value_scale

NOT_COMPUTED = (190, 190, 190)  # a memory-path cell of a state that step does not compute

if TYPE_CHECKING:  # mimviewer.attribution imports torch: loaded after the window is shown
    from mimviewer.attribution import Attribution, AttributionRequest, Progress
    from mimviewer.viewmodel.session import Session


@dataclass
class AttributionView:
    """An attribution drawn for the panel (RGB uint8 images, (H, W, 3))."""

    result: Attribution
    overlays: list[np.ndarray]  # per context frame: the frame with the attribution blended in
    maps: list[np.ndarray]  # per context frame: the attribution alone on its diverging scale
    scale: ColourScale  # that scale (its colour bar)
    memory_labels: list[str]  # rows of the memory plot, "layer 0 C", ...
    memory_shares: np.ndarray  # (rows, steps): share of the gradient, NaN where not computed
    memory_image: np.ndarray  # (rows, steps, 3) those shares on viridis, grey where not computed
    memory_scale: ColourScale

    @property
    def frame_totals(self) -> np.ndarray:
        return self.result.frame_totals


class AttributionState:
    """The attribution panel's settings and last result (mixed-in state of the session)."""

    def __init__(self) -> None:
        self.method = "ig"
        self.baseline = "zeros"
        self.steps = DEFAULT_IG_STEPS
        self.region: tuple[int, int, int, int] | None = None  # x0, y0, x1, y1 of a rectangle
        self.brush: np.ndarray | None = None  # (H, W) bool painted with the brush (wins over region)
        self.view: AttributionView | None = None
        self.context_frame = 0  # the context frame the panel shows (scrubbed on its own)

    def set_method(self, method: str, baseline: str | None = None, steps: int | None = None) -> None:
        if method not in METHODS:
            raise AttributionError(f"unknown attribution method {method!r}; known: {', '.join(METHODS)}")
        if baseline is not None and baseline not in BASELINES:
            raise AttributionError(f"unknown baseline {baseline!r}; known: {', '.join(BASELINES)}")
        self.method = method
        self.baseline = baseline or self.baseline
        self.steps = steps or self.steps

    def request(self, session: Session, frame: int | None = None) -> AttributionRequest:
        """What to explain in ``frame`` (default: the current frame): the brushed pixels, else the
        rectangle, else the whole frame."""
        from mimviewer.attribution import AttributionRequest, Region

        if session.frames is None or session.slots[0] is None:
            raise DataError("open a sequence and a checkpoint first")
        frame = session.frame if frame is None else frame
        if not 1 <= frame <= session.steps:
            raise AttributionError(
                f"frame {frame} has no prediction to explain: pick a frame 1..{session.steps} on the timeline"
            )
        height, width = session.frames.shape[2:]
        if self.brush is not None and self.brush.any():
            mask = self.brush.copy()
        elif self.region is not None:
            mask = Region(*self.region).mask(height, width)
        else:
            mask = np.ones((height, width), bool)
        return AttributionRequest(frame, mask, self.method, self.baseline, ig_steps=self.steps)


def attribution_job(
    session: Session, request: AttributionRequest
) -> Generator[Progress, None, AttributionView]:
    """Attribute with the main model (where its weights are: CPU or GPU) and draw the result."""
    from mimviewer.attribution import iter_attribution
    from mimviewer.attribution_images import attribution_scale, overlay

    slot = session.slots[0]
    if slot is None or session.frames is None:
        raise DataError("open a sequence and a checkpoint first")
    context = session.frames[: session.pre].copy()  # fixed for this job
    renderer = session.renderer
    result = yield from iter_attribution(slot.model, context, request)
    scale = attribution_scale(result)
    shown = result.maps.sum(1)  # (pre, H, W): channels summed
    frames = renderer.frames(context)
    labels, shares = ([], np.zeros((0, 0)))
    if result.memory is not None:
        labels, shares = result.memory.row_matrix(shares=True)
    top = float(np.nanmax(shares)) if np.isfinite(shares).any() else 1.0
    memory_scale = value_scale("viridis", 0.0, top or 1.0, "share of the gradient")
    memory_image = memory_scale.to_rgb(np.nan_to_num(shares, nan=0.0))
    memory_image[np.isnan(shares)] = NOT_COMPUTED
    return AttributionView(
        result=result,
        overlays=[overlay(frames[t], shown[t], scale) for t in range(len(context))],
        maps=[scale.to_rgb(shown[t]) for t in range(len(context))],
        scale=scale,
        memory_labels=labels,
        memory_shares=shares,
        memory_image=memory_image,
        memory_scale=memory_scale,
    )
