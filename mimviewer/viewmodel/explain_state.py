"""The explain part of the view model: the region to explain, the attribution shown, the edits.

Why (attribution): a rectangle or brushed mask of a predicted frame, and the finished
attribution the worker hands back (the job is :func:`.attribution.attribution_job`). What if:
an undoable list of edits of the context frames, and the edited rollout put in its own model
slot (:data:`.whatif.EDITED`) so every view shows it beside the original. Mixed into
:class:`~mimviewer.viewmodel.session.Session`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mimviewer.errors import DataError
from mimviewer.viewmodel.attribution import AttributionState, AttributionView
from mimviewer.viewmodel.results import ModelSlot
from mimviewer.viewmodel.whatif import EDITED, WhatIfState
from mimviewer.whatif import Edit, EditList

if TYPE_CHECKING:
    from mimviewer.render import FrameRenderer
    from mimviewer.viewmodel.events import SessionEvents


class ExplainState:
    """Mixed into the Session: the attribution's region, brush and view; the what-if edits."""

    events: SessionEvents
    slots: list[ModelSlot | None]
    frames: np.ndarray | None  # the session's
    renderer: FrameRenderer
    source: str
    units: str
    pre: int  # the session's

    def _init_explain(self) -> None:
        self.attribution = AttributionState()
        self.whatif = WhatIfState()

    # -- attribution (the job runs in a worker: viewmodel.attribution.attribution_job) -----------
    def set_region(self, region: tuple[int, int, int, int] | None) -> None:
        """The rectangle of the predicted frame to explain (x0, y0, x1, y1; None: none)."""
        region = None if region is None else tuple(int(v) for v in region)
        if region != self.attribution.region:
            self.attribution.region = region
            self.events.region.emit()

    def paint_region(self, points: list[tuple[float, float]], radius: float) -> None:
        """Add a brush stroke (pixel coordinates) to the region to explain."""
        from mimviewer.whatif import brush_mask

        if self.frames is None:
            return
        height, width = self.frames.shape[2:]
        stroke = brush_mask(height, width, points, radius)
        brush = self.attribution.brush
        self.attribution.brush = stroke if brush is None else brush | stroke
        self.events.region.emit()

    def clear_brush(self) -> None:
        if self.attribution.brush is not None:
            self.attribution.brush = None
            self.events.region.emit()

    def accept_attribution(self, view: AttributionView | None) -> None:
        """Show a finished attribution (main thread)."""
        self.attribution.view = view
        if view is not None:
            self.attribution.context_frame = int(np.argmax(np.abs(view.frame_totals)))
        self.events.attribution.emit()

    def save_attribution(self, path: str | Path) -> Path:
        """Write the shown attribution: .npz (every number), .png or .gif (as ``mimviewer attribute``)."""
        from mimviewer.attribution_images import write_attribution_image

        view = self.attribution.view
        if view is None or self.frames is None:
            raise DataError("nothing to save yet: explain a frame first")
        result = view.result
        result.meta.update(input=self.source, model=self.slots[0].name if self.slots[0] else "")
        if Path(path).suffix.lower() == ".npz":
            return result.save(path)
        slot = self.slots[0]
        if slot is None or slot.outputs is None or len(slot.outputs) < result.frame:
            raise DataError("the explained frame's prediction is gone: run inference again")
        return write_attribution_image(
            path,
            result,
            self.frames[: result.pre],
            slot.outputs[result.frame - 1],
            units=self.units,
            renderer=self.renderer,
        )

    # -- what-if ------------------------------------------------------------------------------------
    def push_edit(self, edit: Edit) -> None:
        """Add an edit of a context frame (checked against the frames first)."""
        self.whatif.check(self, edit)
        self.whatif.edits.push(edit)
        self.events.edits.emit()

    def undo_edit(self) -> Edit | None:
        edit = self.whatif.edits.undo()
        self.events.edits.emit()
        return edit

    def redo_edit(self) -> Edit | None:
        edit = self.whatif.edits.redo()
        self.events.edits.emit()
        return edit

    def set_edits(self, edits: EditList) -> None:
        """Replace the edit list (opened from a file or the saved window state)."""
        if self.frames is not None:
            for edit in edits:
                self.whatif.check(self, edit)
        self.whatif.edits = edits
        self.events.edits.emit()

    def set_edit_frame(self, frame: int) -> None:
        self.whatif.frame = int(min(max(frame, 0), max(self.pre - 1, 0)))
        self.events.edits.emit()

    def edited_image(self, frame: int | None = None) -> np.ndarray | None:
        """Display image of a context frame with the edits applied."""
        if self.frames is None:
            return None
        frame = self.whatif.frame if frame is None else frame
        return self.renderer.frames(self.whatif.edited_context(self)[frame])

    def prepare_whatif(self) -> tuple[int, ...]:
        """Put the edited rollout's slot in place (the main model, the edited frames); returns the
        slots a what-if run rolls out."""
        main = self.slots[0]
        if main is None or self.frames is None:
            raise DataError("open a sequence and a checkpoint first")
        self.slots[EDITED] = ModelSlot(
            model=main.model,
            name="edited",
            source=f"what-if: {main.name} on the edited context",
            inputs=self.whatif.edited_window(self),
            reference=0,
        )
        self.events.models.emit(EDITED)
        return (EDITED,) if main.finished else (0, EDITED)
