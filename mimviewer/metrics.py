"""Per-frame scores of a prediction against the ground truth, defined as the field reports them.

Image metrics follow OpenSTL (``openstl/core/metrics.py``), so numbers compare with the
published Moving-MNIST / KTH / TaxiBJ tables:

* ``mse``, ``mae``: per pixel, the mean over (C, H, W) of the (squared / absolute) error.
* ``mse_frame``, ``mae_frame``: summed over the (C, H, W) pixels of a frame. The mean of
  ``mse_frame`` over frames is what OpenSTL and the Moving-MNIST tables call "MSE".
* ``psnr``: ``-10 log10(mse)`` of each frame on [0, 1] data (prediction clipped to [0, 1]
  first, as OpenSTL does); a perfect frame gives ``inf``.
* ``ssim``: scikit-image's ``structural_similarity`` defaults (7x7 uniform window, sample
  covariance, K1 = 0.01, K2 = 0.03, mean over the valid region, channels averaged) with
  ``data_range = 1``, computed with torch so it runs on the GPU. (OpenSTL's tables were made
  with an older scikit-image that took ``data_range = 2`` for float images; pass
  ``ssim_data_range=2.0`` to reproduce those.)

Radar skill follows pySTEPS (``verification.detcatscores``): model-scale values become dBZ
and then rain rate (mm/h, Marshall–Palmer) through :mod:`mimviewer.data.units`; an event
is ``rain > threshold`` in both prediction and truth, and per frame the contingency table of
hits H, misses M, false alarms F and correct negatives R is pooled over the batch and the
pixels. Then ``POD = H/(H+M)``, ``FAR = F/(H+F)``, ``CSI = H/(H+M+F)`` and
``HSS = 2(HR - FM) / ((H+M)(M+R) + (H+F)(F+R))``. A score whose denominator is zero (e.g.
no rain anywhere) is NaN, not an error.

Every metric is an array over frames ``(T,)``; image metrics are averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mimviewer.data import units as radar_units
from mimviewer.errors import ShapeError

RADAR_UNITS: tuple[str, ...] = ("dBZ", "mm/h")
UNITS: tuple[str, ...] = ("intensity", *RADAR_UNITS)
IMAGE_METRICS: tuple[str, ...] = ("mse", "mae", "mse_frame", "mae_frame", "psnr", "ssim")
SKILL_SCORES: tuple[str, ...] = ("csi", "pod", "far", "hss")
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.5, 2, 5, 10, 30)  # rain rate, mm/h

ArrayLike = np.ndarray | torch.Tensor


def skill_key(score: str, threshold: float) -> str:
    """The metrics key of a skill score at a rain-rate threshold, e.g. ``"csi@10"``, ``"pod@0.5"``."""
    return f"{score}@{threshold:g}"


def _as_batch(frames: ArrayLike, name: str, device: torch.device | str | None) -> torch.Tensor:
    """(T,C,H,W) or (N,T,C,H,W) -> float64 tensor (N,T,C,H,W)."""
    tensor = torch.as_tensor(frames)
    if tensor.ndim == 4:
        tensor = tensor[None]
    if tensor.ndim != 5:
        raise ShapeError(f"{name} must be (T,C,H,W) or (N,T,C,H,W), got shape {tuple(tensor.shape)}")
    return tensor.to(device=device, dtype=torch.float64)


def ssim(gt: torch.Tensor, pred: torch.Tensor, *, data_range: float = 1.0, win_size: int = 7) -> torch.Tensor:
    """SSIM of each image, as scikit-image's ``structural_similarity`` defaults compute it.

    ``gt``, ``pred``: ``(..., C, H, W)``; returns ``(...)``: the mean SSIM over the valid
    (fully windowed) region, averaged over channels; NaN for frames smaller than the window.
    """
    *lead, c, h, w = gt.shape
    if min(h, w) < win_size:
        return gt.new_full(tuple(lead), float("nan"))
    x = gt.reshape(-1, 1, h, w)
    y = pred.reshape(-1, 1, h, w)
    n = win_size * win_size
    cov_norm = n / (n - 1)  # sample covariance, as scikit-image

    def window_mean(z: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(z, win_size, stride=1)  # only windows fully inside the frame

    mu_x = window_mean(x)
    mu_y = window_mean(y)
    var_x = cov_norm * (window_mean(x * x) - mu_x * mu_x)
    var_y = cov_norm * (window_mean(y * y) - mu_y * mu_y)
    cov_xy = cov_norm * (window_mean(x * y) - mu_x * mu_y)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    per_channel = (numerator / denominator).mean(dim=(1, 2, 3))  # (B*C,)
    return per_channel.reshape(*lead, c).mean(-1)


def contingency(obs: torch.Tensor, pred: torch.Tensor, threshold: float) -> dict[str, torch.Tensor]:
    """Per-frame contingency table of ``value > threshold`` events, pooled over batch and pixels.

    ``obs``, ``pred``: ``(N, T, ...)``; returns counts ``(T,)`` for hits, misses,
    false_alarms and correct_negatives.
    """
    observed = (obs > threshold).transpose(0, 1).flatten(1)  # (T, N*C*H*W)
    forecast = (pred > threshold).transpose(0, 1).flatten(1)
    return {
        "hits": (observed & forecast).sum(1).double(),
        "misses": (observed & ~forecast).sum(1).double(),
        "false_alarms": (~observed & forecast).sum(1).double(),
        "correct_negatives": (~observed & ~forecast).sum(1).double(),
    }


def skill_scores(table: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CSI, POD, FAR, HSS from a contingency table (pySTEPS definitions); 0/0 gives NaN."""
    h = table["hits"]
    m = table["misses"]
    f = table["false_alarms"]
    r = table["correct_negatives"]
    return {
        "csi": h / (h + m + f),
        "pod": h / (h + m),
        "far": f / (h + f),
        "hss": 2 * (h * r - f * m) / ((h + m) * (m + r) + (h + f) * (f + r)),
    }


def rain_rate(frames: torch.Tensor) -> torch.Tensor:
    """Model-scale radar frames -> rain rate in mm/h (through dBZ, Marshall–Palmer)."""
    return radar_units.unit_to_rain_rate(frames)


@torch.no_grad()
def frame_metrics(
    gt: ArrayLike,
    pred: ArrayLike,
    *,
    units: str = "intensity",
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    ssim_data_range: float = 1.0,
    device: torch.device | str | None = None,
) -> dict[str, np.ndarray]:
    """Scores of every predicted frame, ``key -> (T,)``; see the module docstring for definitions.

    ``gt``, ``pred``: model scale [0, 1], ``(T,C,H,W)`` or ``(N,T,C,H,W)``, same shape.
    ``units``: "intensity", or "dBZ" / "mm/h" to add radar skill at ``thresholds`` (mm/h).
    ``device``: where to compute (default: where ``pred`` is, CPU for numpy arrays).
    """
    if units not in UNITS:
        raise ShapeError(f"unknown units {units!r}; known: {', '.join(UNITS)}")
    if device is None and isinstance(pred, torch.Tensor):
        device = pred.device
    truth = _as_batch(gt, "gt", device)
    guess = _as_batch(pred, "pred", device)
    if truth.shape != guess.shape:
        raise ShapeError(
            f"gt and pred must have the same shape, got {tuple(truth.shape)} and {tuple(guess.shape)}"
        )
    pixels = truth[0, 0].numel()
    error = guess - truth
    mse_pixel = error.square().mean(dim=(2, 3, 4))  # (N, T)
    mae_pixel = error.abs().mean(dim=(2, 3, 4))
    clipped = guess.clamp(0.0, 1.0)  # PSNR and SSIM on the displayable range, as OpenSTL
    mse_clipped = (clipped - truth).square().mean(dim=(2, 3, 4))
    psnr = -10.0 * torch.log10(mse_clipped)  # inf where the frame is perfect
    results = {
        "mse": mse_pixel.mean(0),
        "mae": mae_pixel.mean(0),
        "mse_frame": mse_pixel.mean(0) * pixels,
        "mae_frame": mae_pixel.mean(0) * pixels,
        "psnr": psnr.mean(0),
        "ssim": ssim(truth, clipped, data_range=ssim_data_range).mean(0),
    }
    if units in RADAR_UNITS:
        observed = rain_rate(truth)
        forecast = rain_rate(clipped)
        for threshold in thresholds:
            for score, values in skill_scores(contingency(observed, forecast, threshold)).items():
                results[skill_key(score, threshold)] = values
    return {k: v.cpu().numpy() for k, v in results.items()}


def summary(metrics: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean of every metric over frames; frames where a score is NaN (undefined) are left out."""
    means = {}
    for k, values in metrics.items():
        values = np.asarray(values, dtype=np.float64)
        defined = values[~np.isnan(values)]
        means[k] = float(defined.mean()) if defined.size else float("nan")
    return means
