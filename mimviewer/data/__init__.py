"""Sequence readers, radar units and synthetic generators (no Qt)."""
