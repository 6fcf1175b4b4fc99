"""What the view model tells its views (psygnal, as napari's evented models): one signal per change."""

from __future__ import annotations

from psygnal import Signal, SignalGroup


class SessionEvents(SignalGroup):
    """Views connect to these; a callback may take fewer arguments than a signal sends."""

    sequence = Signal()  # a new sequence (or window start) is shown
    models = Signal(int)  # slot (-1: every slot): a model slot changed, its results were cleared
    step = Signal(int, int)  # slot, t: one more network step arrived
    finished = Signal(int)  # slot: a rollout finished (metrics ready)
    frame = Signal(int)  # frame: the current frame changed
    internals = Signal()  # quantities, reduction or thresholds changed
    display = Signal(str)  # view ("" = every view): its colour map or levels changed
    theme = Signal(str)  # "system", "light" or "dark"
    zoom = Signal()  # the views' zoom was set from outside (a view state opened)
    region = Signal()  # the attribution region (or whole-frame choice) changed
    attribution = Signal()  # an attribution result arrived (or was cleared)
    edits = Signal()  # the what-if edit list or the frame being edited changed
