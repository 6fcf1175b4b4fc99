"""The one rule that turns stored frame values into the model scale [0, 1] (README, "Data").

Every command (view, predict, export, study, train --data) reads frames through this rule,
whatever the file kind:

* ``uint8`` is divided by 255 and ``uint16`` by 65535;
* float frames already in [0, 1] are kept; float frames in 0..255 (a common slip when saving)
  are divided by 255, and the output says so;
* negative values, values above 255, NaN and Inf are refused with one line naming the file and
  how many pixels are affected; so are bool, complex and other integer types.

Radar data in physical units (dBZ, mm/h) follows its own conversion (``mimviewer.data.units``);
this rule is for intensities.
"""

from __future__ import annotations

import numpy as np

from mimviewer.errors import DataError

FLOAT_SLIP_MAX = 255.0  # float frames up to this are taken as 0..255 pixels


def intensity_divisor(values: np.ndarray, source: str) -> tuple[float, str | None]:
    """What to divide ``values`` by to reach [0, 1], and a note when that is not what the type says.

    Refuses values the rule does not accept (see the module docstring)."""
    dtype = values.dtype
    if dtype == np.uint8:
        return 255.0, None
    if dtype == np.uint16:
        return 65535.0, None
    if not np.issubdtype(dtype, np.floating):
        raise DataError(f"{source}: frames must be uint8, uint16 or float, not {dtype}")
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(values.size - np.count_nonzero(finite))
        raise DataError(f"{source}: {bad} pixel value(s) are NaN or infinite; frames must be finite")
    if values.size == 0:
        return 1.0, None
    low, high = float(values.min()), float(values.max())
    if low < 0.0:
        count = int(np.count_nonzero(values < 0))
        raise DataError(
            f"{source}: {count} pixel value(s) are negative (min {low:g}); frames are 0..1 or 0..255"
        )
    if high <= 1.0:
        return 1.0, None
    if high <= FLOAT_SLIP_MAX:
        return 255.0, f"float values up to {high:g}: read as 0..255 and divided by 255"
    count = int(np.count_nonzero(values > FLOAT_SLIP_MAX))
    raise DataError(
        f"{source}: {count} pixel value(s) are above 255 (max {high:g}); frames are 0..1 or 0..255"
    )


def normalise(values: np.ndarray, source: str) -> tuple[np.ndarray, str | None]:
    """Stored intensities -> float32 model scale [0, 1] by the rule, and the note to report (or None)."""
    values = np.asarray(values)
    divisor, note = intensity_divisor(values, source)
    frames = values.astype(np.float32)
    if divisor != 1.0:
        frames /= np.float32(divisor)
    return frames, note
