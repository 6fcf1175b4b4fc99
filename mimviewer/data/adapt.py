"""Adapting a sequence to a model, the same way for every command (view, predict, export).

The frames are fitted to the model's frame size (``--fit resize|crop|pad``) and converted
to its channel count (colour -> grey by luma, grey -> colour); every change is noted, and
the notes are shown under the views or printed by the command.
"""

from __future__ import annotations

import numpy as np

from mimviewer.data.sequence import Sequence, fit_to, match_channels


def adapt(
    seq: Sequence,
    shape: tuple[int, int, int] | None,
    *,
    fit: str = "resize",
    start: int = 0,
    stop: int | None = None,
) -> tuple[Sequence, np.ndarray, tuple[str, ...]]:
    """``seq`` fitted to a model's (C, H, W) (None: as it is), its frames ``start:stop`` in model
    scale (T, C, H, W), and the notes saying what was done to them."""
    if shape is not None:
        seq = fit_to(seq, shape[1], shape[2], fit)
    frames = seq.frames(start, stop)
    notes = tuple(seq.meta.transforms)
    if shape is not None and frames.shape[1] != shape[0]:
        frames = match_channels(frames, shape[0], seq.meta.source)
        how = "by luma" if shape[0] == 1 else "grey repeated" if seq.meta.channels == 1 else "alpha dropped"
        notes += (f"{seq.meta.channels} channel(s) -> {shape[0]} for the model ({how})",)
    return seq, frames, notes
