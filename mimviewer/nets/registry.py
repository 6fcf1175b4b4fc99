"""Architectures by name (timm-style): ``@register_model`` fills it, ``create_model`` reads it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mimviewer.errors import ConfigError

if TYPE_CHECKING:
    from mimviewer.nets.base import RecurrentModel
    from mimviewer.nets.config import ModelConfig


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type[RecurrentModel]
    defaults: dict[str, Any]  # ModelConfig fields that differ from ModelConfig's own defaults
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, description: str = "", **defaults: Any) -> Callable:
    """Class decorator: make an architecture available as ``create_model(name)``."""

    def wrap(cls: type[RecurrentModel]) -> type[RecurrentModel]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(
            name, cls, dict(defaults), description or (cls.__doc__ or "").strip().split("\n")[0]
        )
        cls.arch = name
        return cls

    return wrap


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def model_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    from mimviewer.limits import shorten

    key = name.lower().replace("-", "_") if isinstance(name, str) else name
    if key not in _REGISTRY:
        raise ConfigError(f"unknown architecture {shorten(name)}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def default_config(name: str, **overrides: Any) -> ModelConfig:
    """The registered default config of an architecture, with overrides applied."""
    from mimviewer.nets.config import ModelConfig

    entry = model_entry(name)
    fields = {**entry.defaults, **overrides}
    options = {**entry.defaults.get("options", {}), **overrides.get("options", {})}
    fields["options"] = options
    return ModelConfig(arch=entry.name, **fields)


def create_model(name_or_config: str | ModelConfig, **overrides: Any) -> RecurrentModel:
    """Build a model with fresh weights from a registry name (plus overrides) or a config."""
    from mimviewer.nets.config import ModelConfig

    if isinstance(name_or_config, ModelConfig):
        config = name_or_config.replace(**overrides) if overrides else name_or_config
        entry = model_entry(config.arch)
    else:
        config = default_config(name_or_config, **overrides)
        entry = model_entry(config.arch)
    return entry.cls(config)


def _ensure_loaded() -> None:
    """Import every architecture module so that their decorators have run."""
    import mimviewer.nets  # noqa: F401  (its __init__ imports all architectures)
