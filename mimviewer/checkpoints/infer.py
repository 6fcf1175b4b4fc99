"""The config to build: inferred from the weights under what the file and the user state.

What an architecture's weights look like is declared on the architecture itself
(``RecurrentModel.matches_weights`` / ``config_from_weights`` in each ``mimviewer/nets``
module); this module only asks every registered architecture. Precedence, lowest first:
inferred < config stored in the file < ``config_file`` < ``channels`` / ``overrides``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mimviewer.errors import CheckpointError, ConfigError, ShapeError
from mimviewer.limits import check_config_values, shorten
from mimviewer.nets import ModelConfig, create_model, default_config, list_models, model_entry


class FixedFrameSizeError(ShapeError):
    """The weights fix a frame size other than the input's (the input can be fitted to it)."""


def detect_arch(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The registered architecture whose key names and shapes these weights have, or None.

    Architectures are asked most specific first (``weights_priority``): a PredRNN-V2 file also
    has every key a PredRNN one has.
    """
    classes = sorted((model_entry(name).cls for name in list_models()), key=lambda c: -c.weights_priority)
    return next((cls.arch for cls in classes if cls.matches_weights(state_dict)), None)


def infer_config_fields(
    state_dict: Mapping[str, torch.Tensor],
    arch: str,
    *,
    channels: int | None = None,
    patch_size: int | None = None,
    frame_size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """ModelConfig fields these weights fix, as the architecture itself reads them."""
    return model_entry(arch).cls.config_from_weights(
        state_dict, channels=channels, patch_size=patch_size, frame_size=frame_size
    )


def describe_keys(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _grid_dependent(config: ModelConfig) -> bool:
    """Whether some weight's shape depends on the frame size (LayerNorm, peepholes, 1-D input)."""
    p = config.patch_size
    try:
        with torch.device("meta"):
            a = create_model(config).state_dict()
            b = create_model(config.replace(height=config.height + p, width=config.width + p)).state_dict()
    except Exception:  # a model that cannot be built on the meta device: assume it is fixed
        return True
    return any(a[k].shape != b[k].shape for k in a)


def resolve_config(
    path: Path,
    state_dict: Mapping[str, torch.Tensor],
    stated: dict[str, Any],
    *,
    infer: bool,
    frame_size: tuple[int, int] | None,
) -> tuple[ModelConfig, bool]:
    """The config to build: inferred from the weights (when ``infer``) under the stated fields.

    Returns the config and whether the weights fix the frame size.
    """
    try:  # types and ranges of what the file and flags state, before any arithmetic on them
        stated = check_config_values(stated)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        arch = stated.get("arch") or detect_arch(state_dict)
    except IndexError:  # a tensor with fewer dimensions than any architecture's
        arch = None
    if arch is None:
        raise CheckpointError(
            f"{path}: unknown architecture: its weights match none of the models mimviewer knows "
            f"(first keys: {describe_keys(sorted(state_dict), 4)}); give --arch and a --config"
        )
    try:
        arch = model_entry(arch).name
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None

    fields: dict[str, Any] = {}
    if infer:
        try:
            fields = infer_config_fields(
                state_dict,
                arch,
                channels=stated.get("channels"),
                patch_size=stated.get("patch_size"),
                frame_size=frame_size,
            )
        except KeyError as exc:
            raise CheckpointError(
                f"{path}: weights do not look like a {arch} model (no {shorten(exc.args[0], 60)})"
            ) from None
        except IndexError:  # a weight with fewer dimensions than the architecture's own
            raise CheckpointError(
                f"{path}: weights do not look like a {arch} model (a weight has too few dimensions)"
            ) from None
        except ConfigError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    options = {**fields.get("options", {}), **stated.get("options", {})}  # inferred, then stated
    fields.update(stated)
    if options:
        fields["options"] = options
    fields.pop("arch", None)
    p = int(fields.get("patch_size", model_entry(arch).defaults.get("patch_size", ModelConfig.patch_size)))
    if frame_size is not None and (frame_size[0] % p or frame_size[1] % p):
        raise ShapeError(
            f"the input's frames ({frame_size[0]}x{frame_size[1]}) are not divisible by "
            f"the patch size {p} of {path}"
        )
    if "height" not in fields:  # nothing fixes the frame size: the input's, else the default
        h, w = frame_size if frame_size is not None else (p * max(1, 64 // p),) * 2
        fields.update(height=int(h), width=int(w))
    unknown = set(fields) - (set(ModelConfig.__dataclass_fields__) - {"arch"})
    if unknown:
        raise CheckpointError(f"{path}: unknown config field(s): {', '.join(sorted(unknown))}")
    try:
        config = default_config(arch, **fields)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None

    fixed = _grid_dependent(config)
    if frame_size is not None and (config.height, config.width) != tuple(frame_size):
        if fixed:
            raise FixedFrameSizeError(
                f"{path} expects {config.height}x{config.width} frames (some weights' shapes fix the "
                f"frame size), the input has {frame_size[0]}x{frame_size[1]}"
            )
        config = config.replace(height=int(frame_size[0]), width=int(frame_size[1]))
    return config, fixed
