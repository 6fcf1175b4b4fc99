"""What the frame views show: the drawn images of one timeline frame and the value under the cursor.

Frame k shows GT frame k (drawn on first use), each model's output of step k-1 and its
difference (None until the step is done, or where the frame is not observed), through the
display's colour maps and levels (:meth:`.display.DisplayState.view_image`). Mixed into
:class:`~mimviewer.viewmodel.session.Session`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mimviewer.viewmodel.readout import pixel_value

if TYPE_CHECKING:
    from mimviewer.data.lazy import LazyFrames
    from mimviewer.render import FrameRenderer
    from mimviewer.viewmodel.results import ModelSlot


class FrameImagesState:
    """Mixed into the Session: the frame views' images and readout."""

    slots: list[ModelSlot | None]
    all_frames: np.ndarray | LazyFrames | None
    frames: np.ndarray | None  # the session's
    renderer: FrameRenderer
    start: int  # the forecast's (ForecastState)
    num_frames: int  # the session's
    models: list[tuple[int, ModelSlot]]  # the internals' (InternalsState)
    to_physical: Callable[[np.ndarray], np.ndarray]  # the session's
    view_image: Callable[[str, int, np.ndarray | None], np.ndarray | None]  # the display's
    _frame: int  # the session's current frame
    _gt_cache: dict[int, np.ndarray]  # the session's: drawn GT images by absolute frame index

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
