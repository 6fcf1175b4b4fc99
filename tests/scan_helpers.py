"""Scans for the watch tests: HKO-7 PNG bytes of synthetic storms and a tiny 3 -> 2 model."""

from datetime import datetime, timedelta

import cv2
import numpy as np
import torch

from mimviewer.data.units import dbz_to_hko_pixel
from mimviewer.nets import create_model

PRE, AFT, SIZE = 3, 2, 16
T0 = datetime(2024, 6, 1, 12, 0)
STEP = timedelta(minutes=6)
SETTLE = 0.2


def tiny_model():
    torch.manual_seed(0)
    return create_model(
        "predrnn", num_hidden=(4,), filter_size=3, patch_size=4, height=SIZE, width=SIZE, pre=PRE, aft=AFT
    )


def scan_bytes(dbz: np.ndarray) -> bytes:
    """An HKO-7 PNG of one (1, H, W) dBZ frame."""
    pixels = np.clip(np.rint(dbz_to_hko_pixel(dbz[0])), 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


def scan_name(k: int) -> str:
    return f"RAD{(T0 + k * STEP):%y%m%d%H%M%S}.png"
