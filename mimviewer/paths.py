"""Where the bundled models and resources live, installed or in a source checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled_models_dir() -> Path:
    """The folder of bundled demo checkpoints (``models/`` in the repository)."""
    return Path(str(resources.files("mimviewer.bundled_models")))


def bundled_resources_dir() -> Path:
    """The folder of bundled resources (``resources/`` in the repository)."""
    return Path(str(resources.files("mimviewer.bundled_resources")))
