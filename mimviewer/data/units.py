"""Physical units of radar data and the [0, 1] scale that models see.

- Model scale <-> reflectivity follows HKO-7: a PNG pixel p in 0..255 is ``p * 70 / 255 - 10``
  dBZ, and the model sees ``p / 255``, so ``unit = (dBZ + 10) / 70`` (-10 dBZ -> 0, 60 -> 1).
- Reflectivity <-> rain rate is the Z-R relation ``Z = a R^b`` with ``Z = 10^(dBZ / 10)`` in
  mm^6/m^3 and R in mm/h; Marshall–Palmer ``a = 200, b = 1.6`` unless the caller sets them.
- Rain rate <-> model scale goes through dBZ.

Every function is elementwise and works on numpy arrays, Python floats and torch tensors
alike (metrics run them on the GPU), without clipping unless it says so.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np

Array = TypeVar("Array")

DBZ_MIN = -10.0  # model scale 0 (HKO-7)
DBZ_MAX = 60.0  # model scale 1 (HKO-7)
DBZ_RANGE = DBZ_MAX - DBZ_MIN
MARSHALL_PALMER_A = 200.0
MARSHALL_PALMER_B = 1.6


def _log10(x):
    """log10 for a torch tensor (stays on its device) or anything numpy takes."""
    return x.log10() if hasattr(x, "log10") else np.log10(x)


def dbz_to_unit(dbz: Array) -> Array:
    """Reflectivity (dBZ) -> model scale: ``(dBZ + 10) / 70``."""
    return (dbz - DBZ_MIN) / DBZ_RANGE


def unit_to_dbz(unit: Array) -> Array:
    """Model scale -> reflectivity (dBZ): ``unit * 70 - 10``."""
    return unit * DBZ_RANGE + DBZ_MIN


def hko_pixel_to_dbz(pixel: Array) -> Array:
    """HKO-7 PNG pixel value (0..255) -> dBZ: ``pixel * 70 / 255 - 10``."""
    return pixel * (DBZ_RANGE / 255.0) + DBZ_MIN


def dbz_to_hko_pixel(dbz: Array) -> Array:
    """dBZ -> HKO-7 pixel value (float; round and clip to 0..255 to store it)."""
    return (dbz - DBZ_MIN) * (255.0 / DBZ_RANGE)


def dbz_to_rain_rate(dbz: Array, a: float = MARSHALL_PALMER_A, b: float = MARSHALL_PALMER_B) -> Array:
    """Reflectivity (dBZ) -> rain rate (mm/h) by ``Z = a R^b``: ``R = (10^(dBZ/10) / a)^(1/b)``."""
    z = 10.0 ** (dbz / 10.0)  # mm^6 / m^3
    return (z / a) ** (1.0 / b)


def rain_rate_to_dbz(rain: Array, a: float = MARSHALL_PALMER_A, b: float = MARSHALL_PALMER_B) -> Array:
    """Rain rate (mm/h) -> reflectivity (dBZ): ``10 log10(a R^b)``; R = 0 gives -inf."""
    with np.errstate(divide="ignore"):
        return 10.0 * (math.log10(a) + b * _log10(rain))


def unit_to_rain_rate(unit: Array, a: float = MARSHALL_PALMER_A, b: float = MARSHALL_PALMER_B) -> Array:
    """Model scale -> rain rate (mm/h), through dBZ."""
    return dbz_to_rain_rate(unit_to_dbz(unit), a, b)


def rain_rate_to_unit(rain: Array, a: float = MARSHALL_PALMER_A, b: float = MARSHALL_PALMER_B) -> Array:
    """Rain rate (mm/h) -> model scale through dBZ, clipped to [0, 1] (no rain -> 0)."""
    unit = dbz_to_unit(rain_rate_to_dbz(rain, a, b))
    return unit.clip(0.0, 1.0) if hasattr(unit, "clip") else min(max(unit, 0.0), 1.0)
