"""The attribution's choices and error, without torch: methods, baselines, memory paths, defaults.

:mod:`mimviewer.attribution` (which imports torch) re-exports them; the window's controls read
them from here, so that the window is drawn before torch is imported.
"""

from __future__ import annotations

from mimviewer.errors import MimviewerError

METHODS: dict[str, str] = {
    "saliency": "plain gradient d(region)/d(pixel) (Captum Saliency, signed)",
    "ixg": "gradient x input (Captum InputXGradient)",
    "ig": "integrated gradients from a baseline (Captum IntegratedGradients)",
}
BASELINES: dict[str, str] = {
    "zeros": "every context frame black (no echo)",
    "last": "every context frame replaced by the last context frame (what motion adds)",
    "blur": "every context frame blurred (what fine structure adds)",
}
# States whose gradient norms tell which memory carries the region's information.
MEMORY_PATHS: dict[str, str] = {
    "C": "temporal memory C",
    "M": "spatiotemporal memory M",
    "N": "MIM-N memory N (non-stationary)",
    "S": "MIM-S memory S (stationary)",
    "Z": "PredRNN++ gradient highway Z",
}
DEFAULT_IG_STEPS = 32
DEFAULT_BLUR_SIGMA = 3.0  # pixels


class AttributionError(MimviewerError):
    """An attribution request that cannot be answered (bad frame, empty region, unknown method)."""
