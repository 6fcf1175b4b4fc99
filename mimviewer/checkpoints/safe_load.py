"""Reading pickled checkpoints without running code: ``torch.load(weights_only=True)`` plus stand-ins.

Beyond torch's own allow-list, only plain-data stand-ins are allowed: Lightning's
``AttributeDict`` and ``defaultdict`` come back as dicts, ``argparse.Namespace`` as a namespace,
plain builtin types as themselves; and the training state a Lightning file keeps beside the
weights (optimizer and LR-scheduler objects, numpy scalars, paths: a fixed list of name
prefixes, ``_INERT_PREFIXES``) is replaced by an inert object whose real class is never
imported. A pickle is scanned with ``pickletools`` (nothing runs) to name what it asks for.
"""

from __future__ import annotations

import argparse
import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from mimviewer import checkpoint_guard as guard
from mimviewer.errors import CheckpointError


class _AttributeDict:
    """Stand-in for a dict subclass (Lightning's AttributeDict, defaultdict): comes back as a dict.

    Unpickling creates it with ``cls.__new__(cls)`` and then sets items, which the weights-only
    unpickler only allows on a plain dict, so ``__new__`` returns one.
    """

    def __new__(cls, *args: Any) -> dict:  # type: ignore[misc]
        return {}


class _Namespace(argparse.Namespace):
    """Stand-in for argparse.Namespace (older Lightning hyper-parameters)."""


class _Inert:
    """Stand-in for a training extra that is not weights (an LR scheduler, a numpy scalar, a path).

    The real class or function is never imported or called: building this ignores its
    arguments and state, so whatever the file asked for, nothing runs.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return "<not read>"


# Globals a legitimate Lightning checkpoint references, mapped to plain-data stand-ins.
_SAFE_GLOBALS: list[tuple[Any, str]] = [
    (_AttributeDict, "lightning.fabric.utilities.data.AttributeDict"),
    (_AttributeDict, "pytorch_lightning.utilities.parsing.AttributeDict"),
    (_AttributeDict, "lightning.pytorch.utilities.parsing.AttributeDict"),
    (_AttributeDict, "collections.defaultdict"),
    (_Namespace, "argparse.Namespace"),
    # Plain types that older pickles build by calling them: calling these runs nothing else.
    *((t, f"builtins.{t.__name__}") for t in (dict, list, tuple, set, frozenset, int, float, bool, str)),
    (int, "builtins.long"),
]
# Training extras (optimizer/scheduler state, numpy scalars, paths) that may sit beside the
# weights: their globals are replaced by :class:`_Inert`, so the weights can still be read.
# (Old OneCycleLR state holds a bound method, pickled through builtins.getattr: inert here too.)
_INERT_PREFIXES = (
    "torch.optim.",
    "numpy.",
    "pathlib.",
    "datetime.",
    "functools.partial",
    "builtins.getattr",
    "__builtin__.getattr",
    "copyreg._reconstructor",
    "lightning.",
    "pytorch_lightning.",
)


def _is_training_extra(name: str) -> bool:
    return name.startswith(_INERT_PREFIXES)


def _weights_only_load(path: Path, inert: list[str]) -> Any:
    safe = _SAFE_GLOBALS + [(_Inert, name) for name in inert]
    mmap = guard.check_zip_pickle(path)  # a zip is bounded by its directory, then mapped, not read whole
    with warnings.catch_warnings(), torch.serialization.safe_globals(safe):
        warnings.simplefilter("ignore")  # e.g. "pickle protocol 4": harmless, and not the user's to fix
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)


def torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``; training extras become inert, code-running pickles are refused."""
    try:
        return _weights_only_load(path, [])
    except CheckpointError:
        raise
    except Exception as exc:
        error = exc
    asked = _pickle_globals(path)  # read with pickletools: nothing is imported or run
    if isinstance(error, pickle.UnpicklingError):
        extras = sorted({n for n in asked if _is_training_extra(n)})
        extras += [n.replace("builtins.", "__builtin__.", 1) for n in extras if n.startswith("builtins.")]
        refused = [n for n in asked if not (n.startswith(_TORCH_OWN) or _is_training_extra(n))]
        if extras and not refused:
            try:
                return _weights_only_load(path, extras)
            except Exception as exc:
                error = exc
        wanted = re.search(r"GLOBAL ([\w.]+)", str(error))
        refused = refused or ([wanted.group(1)] if wanted else [])
        if refused:
            raise CheckpointError(
                f"{path}: refused to load: unpickling it would run or import code ({refused[0]}); "
                "only weights, plain containers and known training state are read"
            ) from None
    detail = "" if isinstance(error, pickle.UnpicklingError | KeyError) else f" ({_first_line(error)})"
    raise CheckpointError(
        f"{path}: not a readable checkpoint: corrupt, truncated or another kind of file{detail}"
    ) from None


# Globals torch itself allows when reading weights (tensor rebuilds, storages, OrderedDict).
_TORCH_OWN = ("torch.", "collections.OrderedDict", "_codecs.encode")


def _pickle_globals(path: Path) -> list[str]:
    """Every global a pickle would import, read with pickletools (nothing is imported or run)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                data = z.read(name) if name else b""
        else:
            with path.open("rb") as f:
                data = f.read(64 << 20)
    except (OSError, zipfile.BadZipFile, KeyError):
        return []
    found: list[str] = []
    strings: list[str] = []  # strings pushed so far (STACK_GLOBAL takes module and name from them)
    memo: dict[int, str] = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif op.name == "MEMOIZE" and strings:
                memo[len(memo)] = strings[-1]
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                memo[int(arg)] = strings[-1]
            elif op.name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                strings.append(memo[int(arg)])
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # not a pickle, or a truncated one: whatever was read so far counts
        pass
    safe = {name for _, name in _SAFE_GLOBALS}
    found = [re.sub(r"^__builtin__\.", "builtins.", n) for n in found]  # protocol 2 spells it so
    return [n for n in found if n not in safe]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
