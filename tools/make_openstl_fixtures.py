"""Write tests/fixtures/openstl/: checkpoints in OpenSTL's own flavours plus OpenSTL's own outputs.

OpenSTL's model and module files are imported straight from a checkout (default
/tmp/openstl, or OPENSTL_DIR) with its package imports stubbed (tools/openstl_reference.py),
so none of its heavy dependencies are needed and none of its files enter this repository:
only the data its code produces. For each recurrent architecture OpenSTL has, a tiny model
(2 layers x 8 hidden, 16x16 frames) gets seeded random weights (peepholes and LayerNorms
too, so they matter), is saved in one real checkpoint flavour, and is run by OpenSTL on
random frames with the scheduled-sampling mask all zeros (inference). ``<name>.npz`` holds
the input ``frames`` (B, T, C, H, W, float32), OpenSTL's ``outputs`` (B, T-1, C, H, W: step t
predicts frame t+1), ``pre``, ``aft``, the ``arch`` and the ``checkpoint`` file name.

The outputs are computed in float64 (OpenSTL's model and the frames cast to double; the
float32 weights are exact in double). A float32 rollout's last bits depend on which
convolution kernel oneDNN picks for the CPU it runs on (Intel and AMD differ), so a
float32 reference made on one machine cannot be matched exactly on another; in float64
the rounding is ~1e-16 and any CPU reproduces it to 1e-10.

    .venv/bin/python tools/make_openstl_fixtures.py [--only mim,e3d_lstm]

tests/test_openstl_parity.py loads each checkpoint with no config (inferred from the
weights) and compares mimviewer's outputs with OpenSTL's.
"""

from __future__ import annotations

import argparse
import math
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from openstl_reference import OpenSTL, OpenSTLNotFoundError, load_openstl  # tools/, beside this script
from torch import nn

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "openstl"
BATCH, PRE, AFT = 2, 4, 4


@dataclass(frozen=True)
class Fixture:
    name: str  # our registry name, also the file stem
    model_class: str  # OpenSTL's class in openstl/models (its method's name, saved as a hyper-parameter)
    flavour: str  # lightning | lightning-bare | state-dict-module | training-state | net-param | state-dict
    channels: int = 1
    size: int = 16
    patch_size: int = 2
    filter_size: int = 3
    layer_norm: bool = False
    num_hidden: tuple[int, ...] = (8, 8)
    extra: dict[str, Any] = field(default_factory=dict)


FIXTURES_TO_MAKE = (
    # Lightning .ckpt with hyper_parameters (config from the file), LayerNorm on.
    Fixture("convlstm", "ConvLSTM_Model", "lightning", layer_norm=True),
    # Raw state dict saved from DataParallel ("module." keys); no LayerNorm: size from the input.
    Fixture("predrnn", "PredRNN_Model", "state-dict-module", patch_size=4),
    # {'state_dict', 'optimizer'} training file, 3-channel frames, LayerNorm on.
    Fixture("predrnn_v2", "PredRNNv2_Model", "training-state", channels=3, layer_norm=True),
    # The original PredRNN code's {'net_param': ...}. (OpenSTL's GHU cannot run with LayerNorm.)
    Fixture("predrnn_pp", "PredRNNpp_Model", "net-param"),
    # Lightning .ckpt without hyper_parameters: everything inferred, H'/W' from the peepholes.
    Fixture("mim", "MIM_Model", "lightning-bare", layer_norm=True, num_hidden=(8, 8, 8)),
    # Plain state dict; E3D's kernels are (2, 5, 5) in OpenSTL whatever filter_size says.
    Fixture("e3d_lstm", "E3DLSTM_Model", "state-dict", patch_size=4, filter_size=5),
)


def hyper_parameters(fx: Fixture) -> dict[str, Any]:
    """What OpenSTL's Lightning method saves as hyper-parameters (the fields its models read)."""
    return {
        "method": fx.model_class.removesuffix("_Model"),
        "num_hidden": ",".join(str(n) for n in fx.num_hidden),
        "filter_size": fx.filter_size,
        "stride": 1,
        "patch_size": fx.patch_size,
        "layer_norm": int(fx.layer_norm),
        "in_shape": [PRE + AFT, fx.channels, fx.size, fx.size],
        "pre_seq_length": PRE,
        "aft_seq_length": AFT,
        "total_length": PRE + AFT,
        "reverse_scheduled_sampling": 0,
        "decouple_beta": 0.1,
        "lr": 5e-4,
        "metrics": ["mse", "mae"],
    }


def randomize(model: nn.Module, generator: torch.Generator) -> None:
    """Seeded weights that make every path matter: convs ~ U(+-1.5/sqrt(fan_in)), peepholes and
    LayerNorm affine terms away from their zero/one defaults."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("ct_weight", "oc_weight")):
                p.copy_(0.5 * torch.randn(p.shape, generator=generator))
            elif p.ndim >= 3 and "norm" not in name and ".1." not in name:  # conv kernels
                bound = 1.5 / math.sqrt(p[0].numel())
                p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * bound)
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))
            else:  # LayerNorm weights
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=generator))


class _AttributeDict(dict):
    """Pickles as Lightning's ``lightning.fabric.utilities.data.AttributeDict``, like a real .ckpt."""


def _lightning_attribute_dict(values: dict[str, Any]) -> dict:
    _AttributeDict.__module__ = "lightning.fabric.utilities.data"
    _AttributeDict.__qualname__ = "AttributeDict"
    for name in ("lightning", "lightning.fabric", "lightning.fabric.utilities"):
        sys.modules.setdefault(name, types.ModuleType(name))
    data = sys.modules.setdefault("lightning.fabric.utilities.data", types.ModuleType("data"))
    data.AttributeDict = _AttributeDict
    return _AttributeDict(values)


def checkpoint_object(fx: Fixture, state: dict[str, torch.Tensor]) -> tuple[str, Any]:
    """(file name, object to torch.save) in the fixture's flavour."""
    if fx.flavour in ("lightning", "lightning-bare"):
        ckpt: dict[str, Any] = {
            "epoch": 7,
            "global_step": 1234,
            "pytorch-lightning_version": "2.1.3",
            "state_dict": {f"model.{k}": v for k, v in state.items()},
            "loops": {},
            "callbacks": {},
            "optimizer_states": [],
            "lr_schedulers": [],
        }
        if fx.flavour == "lightning":
            ckpt["hparams_name"] = "kwargs"
            ckpt["hyper_parameters"] = _lightning_attribute_dict(hyper_parameters(fx))
        return f"{fx.name}.ckpt", ckpt
    if fx.flavour == "state-dict-module":
        return f"{fx.name}.pth", {f"module.{k}": v for k, v in state.items()}
    if fx.flavour == "training-state":
        return f"{fx.name}.pth", {
            "epoch": 3,
            "state_dict": state,
            "optimizer": {"state": {}, "param_groups": []},
        }
    if fx.flavour == "net-param":
        return f"{fx.name}.ckpt", {"net_param": state}
    return f"{fx.name}.pth", state


def make(fx: Fixture, openstl: OpenSTL, seed: int) -> Path:
    generator = torch.Generator().manual_seed(seed)
    configs = SimpleNamespace(**hyper_parameters(fx))
    model = openstl.models[fx.name](len(fx.num_hidden), list(fx.num_hidden), configs).eval()
    randomize(model, generator)
    frames = torch.rand((BATCH, PRE + AFT, fx.channels, fx.size, fx.size), generator=generator)
    p = fx.patch_size
    patched = openstl.reshape_patch(frames.permute(0, 1, 3, 4, 2).contiguous(), p)  # (B, T, H', W', p*p*C)
    mask = torch.zeros((BATCH, AFT - 1, fx.size // p, fx.size // p, p * p * fx.channels))
    for module in model.modules():  # MIM keeps MIM-S state on its blocks between calls: start clean
        if hasattr(module, "convlstm_c"):
            module.convlstm_c = None
    model.double()
    torch.set_default_dtype(torch.float64)  # OpenSTL allocates its zero states with the default dtype
    try:
        with torch.no_grad():
            out, _ = model(patched.double(), mask.double(), return_loss=False)  # (B, T-1, H', W', p*p*C)
    finally:
        torch.set_default_dtype(torch.float32)
    model.float()  # the checkpoint keeps float32 weights, as OpenSTL saves them
    outputs = openstl.reshape_patch_back(out, p).permute(0, 1, 4, 2, 3).contiguous()  # (B, T-1, C, H, W)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    file_name, obj = checkpoint_object(fx, state)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    torch.save(obj, FIXTURES / file_name)
    np.savez_compressed(
        FIXTURES / f"{fx.name}.npz",
        frames=frames.numpy(),
        outputs=outputs.numpy(),
        pre=np.int64(PRE),
        aft=np.int64(AFT),
        arch=np.str_(fx.name),
        checkpoint=np.str_(file_name),
        flavour=np.str_(fx.flavour),
    )
    return FIXTURES / file_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated names, e.g. mim,e3d_lstm (default: all)")
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else None
    try:
        openstl = load_openstl(*(fx.name for fx in FIXTURES_TO_MAKE))
    except OpenSTLNotFoundError as error:
        raise SystemExit(f"{error}; no fixtures written.") from None
    for seed, fx in enumerate(FIXTURES_TO_MAKE):
        if wanted is None or fx.name in wanted:
            path = make(fx, openstl, seed)
            print(f"{fx.name:11s} {fx.flavour:18s} {path.name:20s} {path.stat().st_size / 1024:6.1f} KiB")
    total = sum(f.stat().st_size for f in FIXTURES.iterdir())
    print(f"total {total / 1024:.1f} KiB in {FIXTURES}")


if __name__ == "__main__":
    main()
