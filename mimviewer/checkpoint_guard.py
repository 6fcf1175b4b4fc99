"""Checks on a checkpoint file before (and right after) its tensors are read, never after a model is built.

A checkpoint is untrusted input (SECURITY.md). Sizes are read from what the file
*declares* and bounded before anything is materialised:

* the file must be readable (permission denied is said as such, not "corrupt");
* safetensors: the JSON header is parsed here first (length, nesting, each tensor's
  dtype, shape and byte range inside the file), total bytes within the memory budget;
* zip pickles (torch.save's format): the central directory's uncompressed sizes are
  summed before anything is inflated, the pickle itself is bounded;
* every tensor read must own the bytes its shape declares (a stride-0 "expand" of a
  few bytes to gigabytes is refused);
* against the architecture: the model is built on the meta device (no memory), its
  weights must fit the budget and the file's shapes, keys and dtypes must match it
  (int/bool/complex weights refused), and every weight must be finite.
"""

from __future__ import annotations

import math
import struct
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from mimviewer.access import check_readable, os_error
from mimviewer.errors import CheckpointError, ConfigError
from mimviewer.limits import check_memory, gib, json_object, memory_budget, shorten

MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit on its JSON header
MAX_PICKLE_BYTES = 256 << 20  # the pickle of a state dict is small; its tensors live beside it
MAX_ENTRIES = 1_000_000  # tensors (or zip members) in one file
SAFETENSORS_DTYPES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}
_OTHER_DTYPES = {"I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64", "BOOL", "F8_E4M3", "F8_E5M2", "C64"}


# -- safetensors ---------------------------------------------------------------------------


def check_safetensors_header(path: Path) -> dict[str, Any]:
    """The parsed header of a safetensors file, every tensor's declared size checked."""
    size = check_readable(path)
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: corrupt or truncated safetensors file (no header)")
            (length,) = struct.unpack("<Q", head)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise CheckpointError(
                    f"{path}: corrupt or truncated safetensors file: its header claims {length:,} bytes "
                    f"(the file has {size:,}, the format allows {MAX_HEADER_BYTES:,})"
                )
            text = f.read(length)
    except OSError as exc:
        raise os_error(path, exc) from None
    header = json_object(
        text,
        CheckpointError,
        f"{path}: corrupt safetensors header",
        f"{path}: corrupt safetensors header (not a JSON object)",
    )
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{path}: corrupt safetensors metadata (must map names to strings)")
    if len(header) > MAX_ENTRIES:
        raise CheckpointError(f"{path}: declares {len(header):,} tensors (at most {MAX_ENTRIES:,})")
    data_bytes = size - 8 - length
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        label = f"{path}: tensor {shorten(name, 60)}"
        if not isinstance(entry, dict):
            raise CheckpointError(f"{label}: corrupt header entry")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if dtype not in SAFETENSORS_DTYPES:
            if dtype in _OTHER_DTYPES:
                raise CheckpointError(f"{label} holds {dtype} values; weights must be floating point")
            raise CheckpointError(f"{label}: unknown dtype {shorten(dtype)}")
        if (
            not isinstance(shape, list)
            or len(shape) > 8
            or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**40 for n in shape)
        ):
            raise CheckpointError(f"{label}: corrupt shape {shorten(shape)}")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in offsets)
        ):
            raise CheckpointError(f"{label}: corrupt data offsets {shorten(offsets)}")
        nbytes = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
        begin, end = offsets
        if not 0 <= begin <= end <= data_bytes or end - begin != nbytes:
            raise CheckpointError(
                f"{path}: corrupt or truncated safetensors file: tensor {shorten(name, 60)} declares "
                f"shape {shorten(shape)} ({nbytes:,} bytes) at bytes {begin}..{end} of {data_bytes:,}"
            )
        total += nbytes
    check_memory(total, f"{path}: its tensors", advice="this checkpoint is too large for this machine")
    return header


# -- pickles -------------------------------------------------------------------------------


def check_zip_pickle(path: Path) -> bool:
    """Bound a torch.save zip by its central directory (nothing inflated); True if it is a zip."""
    check_readable(path)
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise CheckpointError(f"{path}: corrupt zip checkpoint (its directory cannot be read)") from None
    except OSError as exc:
        raise os_error(path, exc) from None
    if len(infos) > MAX_ENTRIES:
        raise CheckpointError(f"{path}: holds {len(infos):,} members (at most {MAX_ENTRIES:,})")
    for info in infos:
        if info.filename.endswith("data.pkl") and info.file_size > MAX_PICKLE_BYTES:
            raise CheckpointError(
                f"{path}: its pickle {shorten(info.filename, 60)} inflates to {info.file_size:,} bytes "
                f"(at most {MAX_PICKLE_BYTES:,}; a state dict's pickle is a few KB)"
            )
    total = sum(info.file_size for info in infos)
    check_memory(
        total, f"{path}: its members inflated", advice="this checkpoint is too large for this machine"
    )
    return True


def check_tensor_storage(path: Path, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Every tensor must own the bytes its shape declares: no stride-0 expansion to gigabytes."""
    total = 0
    for name, t in state_dict.items():
        if t.device.type == "meta":
            raise CheckpointError(f"{path}: tensor {shorten(name, 60)} has no data (meta tensor)")
        declared = t.numel() * t.element_size()
        span = _storage_span(t)
        if span < declared:
            raise CheckpointError(
                f"{path}: tensor {shorten(name, 60)} declares shape {tuple(t.shape)} ({declared:,} bytes) "
                f"over {span:,} stored bytes (overlapping or stride-0 strides); refused"
            )
        total += declared
    check_memory(total, f"{path}: its tensors", advice="this checkpoint is too large for this machine")


def _storage_span(t: torch.Tensor) -> int:
    """Bytes of storage a tensor's view can reach without repeating any element."""
    if t.numel() == 0:
        return 0
    if any(s == 0 for s, n in zip(t.stride(), t.shape, strict=True) if n > 1):
        return 0 if t.numel() > 1 else t.element_size()
    try:
        storage = t.untyped_storage().nbytes()
    except RuntimeError:
        return 0
    return min(storage - t.storage_offset() * t.element_size(), t.numel() * t.element_size())


# -- against the architecture --------------------------------------------------------------


def check_against_model(
    path: Path,
    config: Any,
    state_dict: Mapping[str, torch.Tensor],
    build: Callable[[Any], torch.nn.Module],
    load_weights: Callable[[Path, torch.nn.Module, Mapping[str, torch.Tensor]], None],
) -> None:
    """Before the real model exists: its weights fit in memory, the file's keys, shapes and
    dtypes match it, and every weight is finite.

    ``build`` makes the model from ``config`` (called on the meta device: nothing is
    allocated); ``load_weights`` is the loader's strict key/shape check.
    """
    try:
        with torch.device("meta"):
            meta = build(config)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    own = meta.state_dict()
    needed = sum(t.numel() * t.element_size() for t in own.values())
    budget = memory_budget()
    if needed > budget:
        raise CheckpointError(
            f"{path}: a {config.arch} model with hidden {shorten(list(config.num_hidden), 60)} would need "
            f"{gib(needed)} for its weights; this machine can hold {gib(budget)}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "copying into a meta parameter is a no-op": that is the point
        load_weights(path, meta, state_dict)
    for name, mine in own.items():
        if name not in state_dict:
            continue
        theirs = state_dict[name]
        if mine.is_floating_point() and not theirs.is_floating_point():
            raise CheckpointError(
                f"{path}: tensor {shorten(name, 60)} holds {str(theirs.dtype).replace('torch.', '')} values; "
                "weights must be floating point (refused rather than cast)"
            )
        if theirs.is_floating_point() and not bool(torch.isfinite(theirs).all()):
            bad = int((~torch.isfinite(theirs)).sum())
            raise CheckpointError(
                f"{path}: tensor {shorten(name, 60)} holds {bad:,} NaN or infinite value(s); "
                "such weights predict nothing"
            )
