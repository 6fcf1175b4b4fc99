"""OpenSTL's own recurrent models, imported from a source checkout, as the reference to compare with.

Used by tools/parity_*.py, tools/make_openstl_fixtures.py and benchmarks/bench_rollout.py.
None of OpenSTL's files live in this repository: they are read at run time from a checkout
(``root``, else the OPENSTL_DIR environment variable, else /tmp/openstl), for instance

    git clone https://github.com/chengtan9907/OpenSTL /tmp/openstl

OpenSTL's package ``__init__`` files pull in many extra libraries, so only the model files,
the module files holding their cells and ``utils/predrnn_utils.py`` are imported, file by
file, under stub packages: ``openstl.modules`` is an empty module filled with the cells, which
is all the model files' ``from openstl.modules import ...`` lines need.

    from openstl_reference import load_openstl  # tools/ on sys.path
    openstl = load_openstl("predrnn", "mim")  # our registry names
    theirs = openstl.build("mim", num_hidden=(8, 8), pre=4, aft=4, channels=1, height=16, ...)
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from torch import nn

DEFAULT_ROOT = Path("/tmp/openstl")

# Our registry name -> OpenSTL's model class, the file in openstl/models that defines it, and
# the files in openstl/modules holding the cells it imports (MIM's stack starts with an ST-LSTM).
MODELS = {
    "convlstm": ("ConvLSTM_Model", "convlstm_model", ("convlstm_modules",)),
    "predrnn": ("PredRNN_Model", "predrnn_model", ("predrnn_modules",)),
    "predrnn_v2": ("PredRNNv2_Model", "predrnnv2_model", ("predrnnv2_modules",)),
    "predrnn_pp": ("PredRNNpp_Model", "predrnnpp_model", ("predrnnpp_modules",)),
    "mim": ("MIM_Model", "mim_model", ("predrnn_modules", "mim_modules")),
    "e3d_lstm": ("E3DLSTM_Model", "e3dlstm_model", ("e3dlstm_modules",)),
}
UTILS = "predrnn_utils"  # reshape_patch and reshape_patch_back


class OpenSTLNotFoundError(FileNotFoundError):
    """No OpenSTL checkout (or not the files we need) where we looked."""


@dataclass(frozen=True)
class OpenSTL:
    root: Path  # the checkout (the folder holding the ``openstl`` package)
    models: dict[str, type]  # OpenSTL's model classes asked for, by our registry name
    cells: types.ModuleType  # the ``openstl.modules`` stub: every cell class of the files loaded
    reshape_patch: Callable  # (B, T, H, W, C) -> (B, T, H/p, W/p, p*p*C)
    reshape_patch_back: Callable  # the inverse

    def build(
        self,
        arch: str,
        *,
        num_hidden: Sequence[int],
        pre: int,
        aft: int,
        channels: int,
        height: int,
        width: int,
        patch_size: int,
        filter_size: int,
        layer_norm: bool,
        reverse_scheduled_sampling: bool = False,
        **extra: Any,
    ) -> nn.Module:
        """OpenSTL's ``arch`` as its method builds it: (num_layers, num_hidden, configs).

        ``configs`` holds the fields its recurrent models read, plus ``extra``
        (e.g. PredRNN-V2's ``decouple_beta``).
        """
        configs = SimpleNamespace(
            in_shape=(pre + aft, channels, height, width),
            patch_size=patch_size,
            filter_size=filter_size,
            stride=1,
            layer_norm=int(layer_norm),
            pre_seq_length=pre,
            aft_seq_length=aft,
            total_length=pre + aft,
            reverse_scheduled_sampling=int(reverse_scheduled_sampling),
            **extra,
        )
        return self.models[arch](len(num_hidden), list(num_hidden), configs)


def openstl_root(root: Path | str | None = None) -> Path:
    """``root`` if given, else $OPENSTL_DIR, else /tmp/openstl."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("OPENSTL_DIR", DEFAULT_ROOT))


def _load_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_openstl(*archs: str, root: Path | str | None = None) -> OpenSTL:
    """Import OpenSTL's models for ``archs`` (our registry names, keys of MODELS) and reshape_patch.

    Raises OpenSTLNotFoundError, with a message saying where it looked, when the checkout or
    one of the files is absent. Every call imports the files afresh.
    """
    hint = " (set OPENSTL_DIR)" if root is None else ""
    root = openstl_root(root)
    package = root / "openstl"
    unknown = [arch for arch in archs if arch not in MODELS]
    if unknown:
        raise ValueError(f"OpenSTL has no {unknown} among its recurrent models {list(MODELS)}")
    module_files = list(dict.fromkeys(file for arch in archs for file in MODELS[arch][2]))
    paths = [
        *(package / "modules" / f"{file}.py" for file in module_files),
        *(package / "models" / f"{MODELS[arch][1]}.py" for arch in archs),
        package / "utils" / f"{UTILS}.py",
    ]
    if not package.is_dir():
        raise OpenSTLNotFoundError(f"OpenSTL source not found at {root}{hint}")
    missing = [str(path.relative_to(root)) for path in paths if not path.is_file()]
    if missing:
        raise OpenSTLNotFoundError(f"OpenSTL source at {root} lacks {', '.join(missing)}{hint}")

    stub = types.ModuleType("openstl")
    stub.__path__ = []  # nothing else of the checkout can be imported through it
    cells = types.ModuleType("openstl.modules")
    stub.modules = cells
    sys.modules["openstl"] = stub
    sys.modules["openstl.modules"] = cells
    for file in module_files:
        module = _load_file(f"openstl.modules.{file}", package / "modules" / f"{file}.py")
        for name, value in vars(module).items():
            if not name.startswith("_"):
                setattr(cells, name, value)
    models = {}
    for arch in archs:
        class_name, file, _ = MODELS[arch]
        module = _load_file(f"openstl.models.{file}", package / "models" / f"{file}.py")
        models[arch] = getattr(module, class_name)
    utils = _load_file(f"openstl.utils.{UTILS}", package / "utils" / f"{UTILS}.py")
    return OpenSTL(root, models, cells, utils.reshape_patch, utils.reshape_patch_back)


def copy_weights(theirs: nn.Module, ours: nn.Module) -> None:
    """Load OpenSTL's weights into ours, strict, less the keys ours declares unused."""
    unused = [re.compile(pattern) for pattern in ours.unused_checkpoint_keys]
    state = {k: v for k, v in theirs.state_dict().items() if not any(u.fullmatch(k) for u in unused)}
    ours.load_state_dict(state, strict=True)


# -- the parity scripts' harness ----------------------------------------------------------
# The config every parity case starts from: 4+3 frames, 2 channels of 8x12, patch 2, 3 x 8 hidden.
BASE_CASE = dict(
    pre=4, aft=3, channels=2, height=8, width=12, patch_size=2, filter_size=3, num_hidden=(8, 8, 8)
)


def check_cases(
    run_case: Callable[..., float], cases: Iterable[tuple[str, dict[str, Any]]], tolerance: float
) -> int:
    """Load OpenSTL, run ``run_case(openstl, arch, **{**BASE_CASE, **changes})`` for each case
    (it prints its line and returns its largest difference), print the verdict.

    Exit status: 0 all within ``tolerance``, 1 a mismatch, 2 no OpenSTL checkout.
    """
    cases = list(cases)
    try:
        openstl = load_openstl(*dict.fromkeys(arch for arch, _ in cases))
    except OpenSTLNotFoundError as error:
        print(f"{error}; nothing checked.")
        return 2
    worst = 0.0
    for arch, changes in cases:
        worst = max(worst, run_case(openstl, arch, **{**BASE_CASE, **changes}))
    verdict = "OK" if worst < tolerance else "MISMATCH"
    print(f"worst difference {worst:.3g} (tolerance {tolerance:g}): {verdict}")
    return 0 if worst < tolerance else 1
