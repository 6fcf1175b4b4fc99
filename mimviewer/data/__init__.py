"""Sequence readers, radar units, colour scales and synthetic generators (no Qt)."""

from mimviewer.data.readers import open_sequence
from mimviewer.data.sequence import Sequence, SequenceMeta, fit_to, from_array

__all__ = ["Sequence", "SequenceMeta", "fit_to", "from_array", "open_sequence"]
