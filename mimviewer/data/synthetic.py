"""Synthetic sequences for demos, tests and on-the-fly training data (nothing downloaded).

Two generators, both seeded and deterministic (one ``numpy.random.Generator`` per call):

- ``bouncing_digits``: Moving-MNIST style. Digits 0-9 are rendered with OpenCV's Hershey
  fonts (several faces, stroke widths and slants, so that the task is not one glyph per
  digit), scaled to ~28 px in a 64 px frame, moving with constant velocity and bouncing off
  the walls; overlapping digits combine by max.
- ``radar_storms``: radar-like reflectivity in dBZ. A few elliptical Gaussian cells advect
  with a common steering wind plus a per-cell drift, grow and decay over their lifetime,
  and carry a multiplicative texture that moves with the wind. Most of the field stays at
  the no-rain background of -10 dBZ.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

NO_RAIN_DBZ = -10.0  # background reflectivity (the bottom of the HKO-7 scale)
MAX_DBZ = 60.0  # top of the HKO-7 scale

_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC,
    cv2.FONT_HERSHEY_COMPLEX | cv2.FONT_ITALIC,
)
_STROKES = (2, 3, 5)  # stroke width at the 64 px render size
_SLANTS_DEG = (-12.0, 0.0, 12.0)


def _render_glyph(digit: int, font: int, stroke: int, slant_deg: float, glyph_size: int) -> np.ndarray:
    """One digit as a (glyph_size, glyph_size) float32 image in [0, 1], ink centred."""
    canvas = np.zeros((96, 96), np.uint8)
    scale = cv2.getFontScaleFromHeight(font, 56, stroke)
    (w, h), _ = cv2.getTextSize(str(digit), font, scale, stroke)
    cv2.putText(canvas, str(digit), ((96 - w) // 2, (96 + h) // 2), font, scale, 255, stroke, cv2.LINE_AA)
    rotation = cv2.getRotationMatrix2D((48, 48), slant_deg, 1.0)
    canvas = cv2.warpAffine(canvas, rotation, (96, 96), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(canvas)
    ink = canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    # MNIST keeps the digit inside a 20x20 box centred in 28x28: same proportions here.
    box = max(1, round(glyph_size * 20 / 28))
    factor = box / max(ink.shape)
    ink_h, ink_w = max(1, round(ink.shape[0] * factor)), max(1, round(ink.shape[1] * factor))
    ink = cv2.resize(ink, (ink_w, ink_h), interpolation=cv2.INTER_AREA)
    glyph = np.zeros((glyph_size, glyph_size), np.float32)
    top, left = (glyph_size - ink_h) // 2, (glyph_size - ink_w) // 2
    glyph[top : top + ink_h, left : left + ink_w] = ink / 255.0
    return glyph


@functools.lru_cache(maxsize=8)
def digit_glyphs(glyph_size: int = 28) -> np.ndarray:
    """All rendered glyphs, (10, styles, glyph_size, glyph_size) float32 in [0, 1]."""
    styles = [(f, s, a) for f in _FONTS for s in _STROKES for a in _SLANTS_DEG]
    bank = np.stack(
        [np.stack([_render_glyph(d, f, s, a, glyph_size) for f, s, a in styles]) for d in range(10)]
    )
    bank.setflags(write=False)
    return bank


def _bounce(start: np.ndarray, velocity: np.ndarray, length: int, limit: float) -> np.ndarray:
    """Positions (T, ...) moving at constant velocity and reflecting off 0 and ``limit``."""
    t = np.arange(length, dtype=np.float64).reshape(-1, *([1] * start.ndim))
    travelled = np.mod(start + velocity * t, 2 * limit)  # unfold the reflections
    return np.where(travelled > limit, 2 * limit - travelled, travelled)


def bouncing_digits(
    num_sequences: int, length: int = 20, size: int = 64, num_digits: int = 2, seed: int = 0
) -> np.ndarray:
    """Moving-MNIST-style sequences, (N, T, 1, size, size) float32 in [0, 1].

    Each digit gets a random glyph style, start position and direction; its speed is
    2-5 px per frame at size 64 (scaled with the frame), like Moving MNIST's trajectories.
    """
    if num_sequences < 0 or length < 1 or num_digits < 0:
        raise ValueError("num_sequences >= 0, length >= 1 and num_digits >= 0 are required")
    glyph_size = max(6, round(size * 28 / 64))
    if glyph_size > size:
        raise ValueError(f"frame size {size} is too small for digits of {glyph_size} px")
    rng = np.random.default_rng(seed)
    bank = digit_glyphs(glyph_size)
    limit = float(size - glyph_size)
    out = np.zeros((num_sequences, length, 1, size, size), np.float32)
    for n in range(num_sequences):
        digits = rng.integers(0, 10, num_digits)
        styles = rng.integers(0, bank.shape[1], num_digits)
        start = rng.uniform(0, limit, (num_digits, 2))
        angle = rng.uniform(0, 2 * np.pi, num_digits)
        speed = rng.uniform(2.0, 5.0, num_digits) * size / 64
        velocity = np.stack([np.sin(angle), np.cos(angle)], axis=-1) * speed[:, None]
        corners = np.rint(_bounce(start, velocity, length, limit)).astype(np.int64)  # (T, D, 2) y, x
        for k in range(num_digits):
            glyph = bank[digits[k], styles[k]]
            for t in range(length):
                y, x = corners[t, k]
                window = out[n, t, 0, y : y + glyph_size, x : x + glyph_size]
                np.maximum(window, glyph, out=window)
    return out


def _smooth_noise(rng: np.random.Generator, height: int, width: int, sigma: float) -> np.ndarray:
    """A smooth standard-normal random field (white noise blurred by a Gaussian)."""
    field = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), sigma)
    return field / max(float(field.std()), 1e-6)


def radar_storms(num_sequences: int, length: int = 20, size: int = 64, seed: int = 0) -> np.ndarray:
    """Radar-like reflectivity sequences, (N, T, 1, size, size) float32 in dBZ, in [-10, 60].

    Per sequence: 2-6 cells, a steering wind of 0.5-2.5 px per frame (at size 64) shared by
    all cells plus a small per-cell drift. Each cell's strength follows a smooth rise and
    fall around its mature time (some are born or die inside the window), and its size
    grows with its strength. Peak reflectivity 35-58 dBZ above the -10 dBZ background.
    """
    if num_sequences < 0 or length < 1 or size < 4:
        raise ValueError("num_sequences >= 0, length >= 1 and size >= 4 are required")
    rng = np.random.default_rng(seed)
    scale = size / 64
    coords = np.arange(size, dtype=np.float32)
    t = np.arange(length, dtype=np.float32)[:, None]  # (T, 1)
    margin = int(np.ceil(2.5 * scale * length)) + 2
    out = np.empty((num_sequences, length, 1, size, size), np.float32)
    for n in range(num_sequences):
        cells = int(rng.integers(2, 7))
        wind_angle = rng.uniform(0, 2 * np.pi)
        wind = rng.uniform(0.5, 2.5) * scale * np.array([np.sin(wind_angle), np.cos(wind_angle)])
        drift = rng.normal(0.0, 0.3 * scale, (cells, 2))
        velocity = (wind + drift).astype(np.float32)  # (K, 2) px per frame, y then x
        # Start where the cell will cross the frame during the window.
        centre0 = rng.uniform(-0.1 * size, 1.1 * size, (cells, 2)).astype(np.float32)
        centre0 -= velocity * (length / 2)
        cy = centre0[:, 0] + velocity[:, 0] * t  # (T, K)
        cx = centre0[:, 1] + velocity[:, 1] * t
        mature = rng.uniform(-0.3 * length, 1.3 * length, cells).astype(np.float32)
        lifetime = rng.uniform(0.4 * length, 1.5 * length, cells).astype(np.float32)
        strength = np.exp(-(((t - mature) / (0.5 * lifetime)) ** 2))  # (T, K) in (0, 1]
        peak = rng.uniform(35.0, 58.0, cells).astype(np.float32)  # dBZ above the background
        sigma_major = rng.uniform(4.0, 10.0, cells).astype(np.float32) * scale
        sigma_minor = sigma_major * rng.uniform(0.4, 0.9, cells).astype(np.float32)
        theta = rng.uniform(0, np.pi, cells).astype(np.float32)
        grow = 0.6 + 0.4 * strength  # (T, K): cells widen as they mature
        # Elliptical Gaussian as a quadratic form q = a dx^2 + 2 b dx dy + c dy^2 (rotated axes).
        cos, sin = np.cos(theta), np.sin(theta)
        inv_major = 1.0 / (sigma_major * grow) ** 2  # (T, K)
        inv_minor = 1.0 / (sigma_minor * grow) ** 2
        a = cos**2 * inv_major + sin**2 * inv_minor
        b = cos * sin * (inv_major - inv_minor)
        c = sin**2 * inv_major + cos**2 * inv_minor
        dx = coords[None, None, None, :] - cx[:, :, None, None]  # (T, K, 1, W)
        dy = coords[None, None, :, None] - cy[:, :, None, None]  # (T, K, H, 1)
        q = (a[..., None, None] * dx**2 + c[..., None, None] * dy**2) + (2 * b[..., None, None] * dx) * dy
        shape = np.exp(-0.5 * q)  # (T, K, H, W)
        rain = (shape * (peak * strength)[:, :, None, None]).max(axis=1)  # (T, H, W) dBZ above background
        # Texture moves with the steering wind: crop a shifted window from one larger field.
        texture = _smooth_noise(rng, size + 2 * margin, size + 2 * margin, sigma=2.0 * scale)
        for step in range(length):
            oy, ox = np.rint(margin - wind * step).astype(int)
            factor = np.exp(0.25 * texture[oy : oy + size, ox : ox + size])
            out[n, step, 0] = NO_RAIN_DBZ + rain[step] * factor
    np.clip(out, NO_RAIN_DBZ, MAX_DBZ, out=out)
    return out
