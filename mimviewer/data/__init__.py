"""Sequence readers, the input rule, radar units and synthetic generators (no Qt)."""

from mimviewer.data.adapt import adapt
from mimviewer.data.normalise import normalise
from mimviewer.data.readers import open_sequence
from mimviewer.data.sequence import FIT_MODES, Sequence, SequenceMeta, fit_to, from_array

__all__ = [
    "FIT_MODES",
    "Sequence",
    "SequenceMeta",
    "adapt",
    "fit_to",
    "from_array",
    "normalise",
    "open_sequence",
]
