"""The window's view model, without Qt (napari's ViewerModel split): one job per module.

* :mod:`.session` — the state of what is open and shown (:class:`Session`): the sequence,
  the current frame and runs; its other state is mixed in from one module per job:
  :mod:`.forecast_state` (context, horizon, "now"), :mod:`.slots` (the model slots and
  the delta row), :mod:`.explain_state` (attribution region and view, what-if edits),
  :mod:`.frame_images` (the frame views' images and readout), :mod:`.display`;
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
