"""The one configuration record every architecture is built from."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from mimviewer.errors import ConfigError
from mimviewer.limits import check_config_values, json_object, shorten


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; stored verbatim in our checkpoints."""

    arch: str  # registry name, e.g. "predrnn", "mim"
    num_hidden: tuple[int, ...] = (64, 64, 64, 64)  # hidden channels (or units) per layer
    filter_size: int = 5  # square conv kernel of every recurrent conv
    stride: int = 1  # conv stride; recurrent state must keep its size, so only 1 works
    patch_size: int = 4  # p: a (C,H,W) frame becomes (p*p*C, H/p, W/p)
    layer_norm: bool = False  # LayerNorm over (channels, H', W') after each conv
    channels: int = 1  # C of one frame
    height: int = 64  # frame height H in pixels
    width: int = 64  # frame width W in pixels
    pre: int = 10  # default number of context frames
    aft: int = 10  # default number of predicted frames
    units: str = "intensity"  # what frame values mean once scaled back: intensity, dBZ, mm/h
    options: dict[str, Any] = field(default_factory=dict)  # architecture-specific extras

    def __post_init__(self) -> None:
        # Types and ranges first (mimviewer/limits.py): a file's "6000" or NaN never gets built.
        checked = check_config_values({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        for name, value in checked.items():
            setattr(self, name, value)
        self.num_hidden = tuple(int(n) for n in self.num_hidden)
        self.layer_norm = bool(self.layer_norm)
        self.validate()

    # -- derived sizes -------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.num_hidden)

    @property
    def patch_channels(self) -> int:
        """Channels of a patchified frame: p*p*C."""
        return self.patch_size * self.patch_size * self.channels

    @property
    def grid_height(self) -> int:
        """H' = H / p, the height of every recurrent state."""
        return self.height // self.patch_size

    @property
    def grid_width(self) -> int:
        return self.width // self.patch_size

    def validate(self) -> None:
        if not self.num_hidden or min(self.num_hidden) < 1:
            raise ConfigError(f"num_hidden must list at least one positive size, got {self.num_hidden}")
        for name in ("filter_size", "patch_size", "channels", "height", "width", "pre", "aft"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.filter_size % 2 == 0:
            raise ConfigError(
                f"filter_size must be odd so that 'same' padding keeps the size, got {self.filter_size}"
            )
        if self.stride != 1:
            raise ConfigError(
                f"stride {self.stride} is not supported: a recurrent state must keep its size "
                "from step to step (OpenSTL's recurrent models also only work with stride 1)"
            )
        if self.height % self.patch_size or self.width % self.patch_size:
            raise ConfigError(
                f"frame size {self.height}x{self.width} is not divisible by the patch size {self.patch_size}"
            )

    def flag(self, name: str) -> bool:
        """A yes/no option such as ``options["peephole"]``; absent means no (old configs unchanged)."""
        value = self.options.get(name, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.arch}: option {name!r} must be true or false, got {value!r}")
        return value

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    # -- serialisation (safetensors metadata is str -> str) ----------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["num_hidden"] = list(self.num_hidden)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown config field(s): {shorten(', '.join(sorted(map(str, unknown))), 80)}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        d = json_object(
            text, ConfigError, "config is not valid JSON", "config JSON must be an object of fields", 80
        )
        return cls.from_dict(d)
