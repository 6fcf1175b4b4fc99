"""The window's view model, without Qt (napari's ViewerModel split): one job per module.

* :mod:`.session` — the state of what is open and shown (:class:`Session`);
* :mod:`.internals` — the internals panel's state (quantities, reduction, thresholds);
* :mod:`.readout` — the maths: metrics over the timeline, the value under the cursor,
  re-reduction, heatmaps and their colour ranges;
* :mod:`.jobs` — inference and export as plain Python the UI runs in worker threads;
* :mod:`.results` — what a rollout produces; :mod:`.events` — psygnal signals.

Drawing is :mod:`mimviewer.render`'s (the one renderer of the window, exports and study).
"""

from mimviewer.viewmodel.events import SessionEvents
from mimviewer.viewmodel.readout import REDUCTIONS, is_gate
from mimviewer.viewmodel.results import InferenceError, ModelSlot, OutOfDeviceMemory, SlotDone, StepUpdate
from mimviewer.viewmodel.session import Session

__all__ = [
    "REDUCTIONS",
    "InferenceError",
    "ModelSlot",
    "OutOfDeviceMemory",
    "Session",
    "SessionEvents",
    "SlotDone",
    "StepUpdate",
    "is_gate",
]
