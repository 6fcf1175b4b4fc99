"""Bundled resources: demo sequences, icons, colour maps."""
