"""The model slots of the view model: which model is in which row, and the rows derived from it.

Slot 0 is the checkpoint, slot 1 the one compared with it; slot 2 is the what-if rollout
(:mod:`.whatif`) and slot 3 the delta inference rollout (:mod:`.delta`), both the main
model's. Loading a model clears its slot's results and refits a sequence opened from a file
to the model's frame size. Mixed into :class:`~mimviewer.viewmodel.session.Session`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mimviewer.errors import DataError
from mimviewer.viewmodel.delta import DELTA, check_eps, slot_name
from mimviewer.viewmodel.results import ModelSlot
from mimviewer.viewmodel.whatif import EDITED

if TYPE_CHECKING:  # torch is imported after the window is shown (in the background)
    from mimviewer.nets.base import RecurrentModel
    from mimviewer.viewmodel.attribution import AttributionState
    from mimviewer.viewmodel.events import SessionEvents


class SlotsState:
    """Mixed into the Session: putting models into slots and taking them out; the delta row."""

    events: SessionEvents
    slots: list[ModelSlot | None]
    frames: np.ndarray | None  # the session's
    attribution: AttributionState
    _sequence: object  # the data reader's Sequence when the frames came from a file (None: not)
    _quantities: list[str]  # the internals' (InternalsState)
    _show_sequence: Callable[[], None]  # the session's: refits the opened file to the main model
    _forget_slot: Callable[[int], None]  # the display's (DisplayState): drops a slot's drawn images
    default_quantities: Callable[[], list[str]]  # the internals'

    # -- models ------------------------------------------------------------------------------
    def set_model(self, model: RecurrentModel, *, name: str, source: str = "", slot: int = 0) -> None:
        """Put a model into slot 0 (main) or 1 (compared); clears that slot's results."""
        model.eval()
        self.slots[slot] = ModelSlot(model=model, name=name, source=source)
        if slot == 0:  # the what-if rollout and the attribution were the old main model's
            self.slots[EDITED] = None
            self.attribution.view = None
            delta = self.slots[DELTA]
            if delta is not None:  # the delta row follows the main model, at the same threshold
                self.slots[DELTA] = self._delta_slot(delta.delta_eps)
        if slot == 0 and self._sequence is not None and self.frames is not None:
            cfg = model.config
            if self.frames.shape[1:] != (cfg.channels, cfg.height, cfg.width):
                self._show_sequence()
        self._clear_results(slot)
        if slot == 0 or not self._quantities:
            self._quantities = self.default_quantities()
        self.events.models.emit(slot)

    def remove_model(self, slot: int) -> None:
        self.slots[slot] = None
        self.events.models.emit(slot)

    def load_checkpoint(self, path: str | Path, *, slot: int = 0) -> None:
        """Load a checkpoint into a slot; a sequence opened from a file is resized to fit it."""
        from mimviewer.checkpoints import load_checkpoint, load_for_input

        if self.frames is None:
            loaded = load_checkpoint(path)
        else:
            channels, size = self.frames.shape[1], self.frames.shape[2:]
            loaded = load_for_input(path, channels=channels, frame_size=(size[0], size[1]))
        self.set_model(loaded.model, name=Path(path).name, source=str(path), slot=slot)

    def _clear_results(self, slot: int) -> None:
        self._forget_slot(slot)
        s = self.slots[slot]
        if s is not None:
            s.clear()

    # -- timing: pre / aft -----------------------------------------------------------------
    # -- delta inference -------------------------------------------------------------------------------
    @property
    def delta_eps(self) -> float | None:
        """The delta row's threshold (None: no delta row)."""
        slot = self.slots[DELTA]
        return None if slot is None else slot.delta_eps

    def _delta_slot(self, eps: float) -> ModelSlot:
        main = self.slots[0]
        return ModelSlot(
            model=main.model,
            name=slot_name(eps),
            source=f"delta inference: {main.name} with |Δh| < {eps:g} skipped",
            reference=0,
            reference_name="exact",
            delta_eps=eps,
        )

    def set_delta(self, eps: float | None) -> tuple[int, ...]:
        """Show the main model's delta rollout at threshold ``eps`` as an extra row (None: remove it;
        0 is the exact rollout up to float rounding); returns the slots a run must roll out."""
        if eps is None:
            if self.slots[DELTA] is not None:
                self.slots[DELTA] = None
                self.events.models.emit(DELTA)
            return ()
        eps = check_eps(eps)
        main = self.slots[0]
        if main is None:
            raise DataError("open a checkpoint first")
        self.slots[DELTA] = self._delta_slot(eps)
        self.events.models.emit(DELTA)
        return (DELTA,) if main.finished else (0, DELTA)

    def delta_status(self) -> str:
        """What the delta row skipped, per layer (one line; empty without a finished delta row)."""
        slot = self.slots[DELTA]
        return "" if slot is None or slot.delta is None else slot.delta.status()
