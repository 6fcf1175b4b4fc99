"""OpenSTL's ways of stating a model: hyper-parameters in a checkpoint and ``.py`` config files."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mimviewer.access import check_readable, os_error
from mimviewer.errors import CheckpointError, ConfigError
from mimviewer.limits import MAX_CONFIG_BYTES, check_config_values, json_object, shorten

# OpenSTL method names (any case, punctuation ignored) -> our registry names.
OPENSTL_METHODS: dict[str, str] = {
    "convlstm": "convlstm",
    "predrnn": "predrnn",
    "predrnnv2": "predrnn_v2",
    "predrnnpp": "predrnn_pp",
    "predrnnplusplus": "predrnn_pp",
    "mim": "mim",
    "e3dlstm": "e3d_lstm",
    "lstm": "lstm",
    "lstmp": "lstmp",
    "sru": "sru",
}


def openstl_fields(d: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """ModelConfig fields from OpenSTL names (method, num_hidden "64,64", in_shape, ...)."""
    fields: dict[str, Any] = {}
    if "method" in d and isinstance(d["method"], str):
        key = re.sub(r"[^a-z0-9]", "", d["method"].lower())
        if key not in OPENSTL_METHODS:
            raise CheckpointError(
                f"{source}: method {shorten(d['method'])} is not a recurrent model mimviewer knows"
            )
        fields["arch"] = OPENSTL_METHODS[key]
    try:
        if "num_hidden" in d:
            hidden = d["num_hidden"]
            items = hidden.split(",") if isinstance(hidden, str) else hidden
            if len(items) > 4096:
                raise ValueError(f"num_hidden lists {len(items):,} layers")
            fields["num_hidden"] = tuple(int(n) for n in items)
        for ours, theirs in (
            ("filter_size", "filter_size"),
            ("stride", "stride"),
            ("patch_size", "patch_size"),
            ("pre", "pre_seq_length"),
            ("aft", "aft_seq_length"),
        ):
            if d.get(theirs) is not None:
                fields[ours] = int(d[theirs])
        if d.get("layer_norm") is not None:
            fields["layer_norm"] = bool(int(d["layer_norm"]))
        if d.get("in_shape") is not None:
            _, c, h, w = (int(n) for n in d["in_shape"])
            fields.update(channels=c, height=h, width=w)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{source}: unreadable model settings ({shorten(str(exc), 80)})") from None
    if fields.get("arch") == "e3d_lstm":
        fields.pop("filter_size", None)  # OpenSTL's E3D-LSTM ignores it: its kernels are always (2, 5, 5)
    return fields


def read_config_file(path: str | Path) -> dict[str, Any]:
    """ModelConfig fields from an OpenSTL config ``.py`` (read as data, never executed) or our JSON.

    Only top-level ``name = <literal>`` assignments are accepted; anything else (a call, an
    import, a computed value) is refused with the file and line.
    """
    path = Path(path)
    size = check_readable(path, ConfigError, "config")
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes is not a config file (at most {MAX_CONFIG_BYTES:,})")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise os_error(path, exc, ConfigError) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a config file (binary, not UTF-8 text)") from None
    if path.suffix == ".json":
        d = json_object(
            text, ConfigError, f"{path}: not valid JSON", f"{path}: expected a JSON object of config fields"
        )
        try:
            return check_config_values(d)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise ConfigError(f"{path}: not a Python config file (line {exc.lineno}: {exc.msg})") from None
    except (RecursionError, MemoryError, ValueError):  # nested too deep for the parser; NUL bytes
        raise ConfigError(f"{path}: not a config file (nested too deeply or not text)") from None
    values: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        if not (isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets)):
            raise ConfigError(
                f"{path}:{node.lineno}: only 'name = value' assignments are read from a config file"
            )
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            raise ConfigError(
                f"{path}:{node.lineno}: {ast.unparse(node.targets[0])} is not a literal value "
                "(config files are read as data, never executed)"
            ) from None
        for target in node.targets:
            values[target.id] = value  # type: ignore[union-attr]
    fields = openstl_fields(values, source=str(path))
    try:
        return check_config_values(fields)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
