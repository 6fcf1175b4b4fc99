"""The window's what-if: the edit list of the context frames and the edited rollout's slot.

Edits (:mod:`mimviewer.whatif`) are kept as an undoable list; the edited rollout is an extra
model slot (:data:`EDITED`) holding the main model and the edited frames, so the frame views,
internals and metric curves show it beside the original with no code of their own. Its
difference view is edited − original (the main model's prediction), by the renderer's one
difference rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mimviewer.errors import DataError
from mimviewer.whatif import Edit, EditList, apply_edits

if TYPE_CHECKING:
    from mimviewer.viewmodel.session import Session

EDITED = 2  # the model slot of the edited rollout (0: main model, 1: the compared one)


class WhatIfState:
    """The edit list, the context frame being edited, and the edited frames (cached)."""

    def __init__(self) -> None:
        self.edits = EditList()
        self.frame = 0  # the context frame shown for editing
        self._cache: tuple[tuple[Edit, ...], int, np.ndarray] | None = None

    def edited_context(self, session: Session) -> np.ndarray:
        """The context frames (pre, C, H, W) with every edit applied (the originals are untouched)."""
        if session.frames is None:
            raise DataError("open a sequence first")
        key = (self.edits.edits, (id(session.all_frames), session.start, session.pre))
        if self._cache is None or self._cache[:2] != key:
            self._cache = (*key, apply_edits(session.frames[: session.pre], self.edits.edits))
        return self._cache[2]

    def edited_window(self, session: Session) -> np.ndarray:
        """What the edited rollout reads: the window's frames with the context edited."""
        window = np.array(session.frames[: session.pre + session.aft], copy=True)
        window[: session.pre] = self.edited_context(session)
        return window

    def check(self, session: Session, edit: Edit) -> None:
        """Raise :class:`~mimviewer.whatif.WhatIfError` if ``edit`` does not fit the context."""
        apply_edits(session.frames[: session.pre], [*self.edits.edits, edit])
