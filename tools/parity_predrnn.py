"""Check mimviewer's PredRNN, PredRNN-V2 and PredRNN++ against OpenSTL's own code, live.

OpenSTL's model and module files are imported straight from a checkout (default
/tmp/openstl, or the OPENSTL_DIR environment variable) with its package imports stubbed,
so none of its heavy dependencies are needed and none of its files live in this repository.
For each config the script builds OpenSTL's model with random weights, loads its state
dict into ours (strict, after dropping ``unused_checkpoint_keys``), runs both on the same
frames and prints the largest absolute difference of the predictions (and, for
PredRNN-V2, of the training loss including the decoupling term). It also saves OpenSTL's
weights as a Lightning ``.ckpt`` and checks that ``load_checkpoint`` (config inferred from
the weights) gives the same model.

    .venv/bin/python tools/parity_predrnn.py
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tempfile
import types
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from mimviewer.checkpoints import load_checkpoint
from mimviewer.nets import create_model

TOLERANCE = 1e-5
OPENSTL_DIR = Path(os.environ.get("OPENSTL_DIR", "/tmp/openstl")) / "openstl"


def load_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_openstl() -> SimpleNamespace:
    """Import only the files we need; ``openstl.modules`` is a stub filled with their cells."""
    stub_package = types.ModuleType("openstl")
    stub_package.__path__ = []
    stub_modules = types.ModuleType("openstl.modules")
    sys.modules["openstl"] = stub_package
    sys.modules["openstl.modules"] = stub_modules
    for file in ("predrnn_modules", "predrnnv2_modules", "predrnnpp_modules"):
        module = load_file(f"openstl_ref.{file}", OPENSTL_DIR / "modules" / f"{file}.py")
        for name in dir(module):
            if not name.startswith("_"):
                setattr(stub_modules, name, getattr(module, name))
    models = {
        file: load_file(f"openstl_ref.{file}", OPENSTL_DIR / "models" / f"{file}.py")
        for file in ("predrnn_model", "predrnnv2_model", "predrnnpp_model")
    }
    utils = load_file("openstl_ref.predrnn_utils", OPENSTL_DIR / "utils" / "predrnn_utils.py")
    return SimpleNamespace(
        predrnn=models["predrnn_model"].PredRNN_Model,
        predrnn_v2=models["predrnnv2_model"].PredRNNv2_Model,
        predrnn_pp=models["predrnnpp_model"].PredRNNpp_Model,
        reshape_patch=utils.reshape_patch,
        reshape_patch_back=utils.reshape_patch_back,
    )


def randomise(model: torch.nn.Module) -> None:
    """Make every weight matter: LayerNorm away from (1, 0), GHU convs away from their 1e-3 init."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 3:  # LayerNorm weight or bias over (channels, H', W')
                param.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(param))
            elif "gradient_highway" in name:
                param.uniform_(-0.2, 0.2)


def checkpoint_round_trip(theirs, frames, pre, aft, expected, sampling) -> float:
    """Save OpenSTL's weights as a Lightning .ckpt, open it with load_checkpoint (config inferred), rerun."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "openstl.ckpt"
        torch.save({"state_dict": {f"model.{k}": v for k, v in theirs.state_dict().items()}}, path)
        loaded = load_checkpoint(path, channels=frames.shape[2], frame_size=tuple(frames.shape[-2:]))
    loaded.model.train(theirs.training)
    with torch.set_grad_enabled(theirs.training):
        return (loaded.model(frames, pre, aft, sampling_mask=sampling) - expected).abs().max().item()


def run_case(
    openstl: SimpleNamespace, arch: str, *, reverse: bool = False, train: bool = False, **cfg
) -> float:
    torch.manual_seed(0)
    pre, aft, channels, height, width = cfg["pre"], cfg["aft"], cfg["channels"], cfg["height"], cfg["width"]
    p, hidden = cfg["patch_size"], cfg["num_hidden"]
    args = SimpleNamespace(
        in_shape=(pre + aft, channels, height, width),
        patch_size=p,
        filter_size=cfg["filter_size"],
        stride=1,
        layer_norm=int(cfg["layer_norm"]),
        pre_seq_length=pre,
        aft_seq_length=aft,
        total_length=pre + aft,
        reverse_scheduled_sampling=int(reverse),
        decouple_beta=0.1,
    )
    theirs = getattr(openstl, arch)(len(hidden), list(hidden), args)
    randomise(theirs)
    ours = create_model(arch, **cfg)
    unused = [re.compile(pattern) for pattern in ours.unused_checkpoint_keys]
    state = {k: v for k, v in theirs.state_dict().items() if not any(u.fullmatch(k) for u in unused)}
    ours.load_state_dict(state, strict=True)
    theirs.train(train)
    ours.train(train)

    batch, steps = 2, pre + aft - 1
    frames = torch.rand(batch, pre + aft, channels, height, width)  # (B, T, C, H, W)
    patched = openstl.reshape_patch(frames.permute(0, 1, 3, 4, 2), p)  # (B, T, H', W', p*p*C)
    mask_steps = steps - 1 if reverse else aft - 1
    mask = (
        (torch.rand(batch, mask_steps) < 0.5).float()
        if (reverse or train)
        else torch.zeros(batch, mask_steps)
    )
    mask_true = mask[:, :, None, None, None].expand(-1, -1, *patched.shape[2:]).contiguous()

    with torch.set_grad_enabled(train):
        their_out, their_loss = theirs(patched, mask_true, return_loss=train)
        their_frames = openstl.reshape_patch_back(their_out, p).permute(0, 1, 4, 2, 3)  # (B, steps, C, H, W)
        sampling = mask if (reverse or train) else None
        our_frames = ours(frames, pre, aft, sampling_mask=sampling)
    diff = (our_frames - their_frames).abs().max().item()
    line = f"{arch:11s} layer_norm={int(cfg['layer_norm'])} reverse={int(reverse)} train={int(train)}"
    line += f" hidden={list(hidden)} patch={p}: max |prediction diff| = {diff:.3g}"
    if train:
        our_loss = F.mse_loss(our_frames, frames[:, 1:])
        auxiliary = ours.auxiliary_loss()
        if auxiliary is not None:
            our_loss = our_loss + args.decouple_beta * auxiliary
        loss_diff = (our_loss - their_loss).abs().item()
        line += f", |loss diff| = {loss_diff:.3g} (loss {their_loss.item():.5f})"
        diff = max(diff, loss_diff)
    loader_diff = checkpoint_round_trip(theirs, frames, pre, aft, our_frames.detach(), sampling)
    line += f", via load_checkpoint {loader_diff:.3g}"
    diff = max(diff, loader_diff)
    print(line)
    return diff


def main() -> int:
    if not (OPENSTL_DIR / "models" / "predrnn_model.py").exists():
        print(f"OpenSTL source not found at {OPENSTL_DIR.parent} (set OPENSTL_DIR); nothing checked.")
        return 2
    openstl = load_openstl()
    base = dict(
        pre=4, aft=3, channels=2, height=8, width=12, patch_size=2, filter_size=3, num_hidden=(8, 8, 8)
    )
    cases = [
        ("predrnn", {}, dict(layer_norm=False)),
        ("predrnn", {}, dict(layer_norm=True)),
        ("predrnn", {}, dict(layer_norm=False, patch_size=4, channels=1, filter_size=5)),
        ("predrnn", dict(reverse=True), dict(layer_norm=False)),
        ("predrnn_v2", {}, dict(layer_norm=False)),
        ("predrnn_v2", {}, dict(layer_norm=True)),
        ("predrnn_v2", dict(reverse=True, train=True), dict(layer_norm=False)),
        ("predrnn_v2", dict(train=True), dict(layer_norm=True)),
        ("predrnn_pp", {}, dict(layer_norm=False)),
        ("predrnn_pp", {}, dict(layer_norm=False, patch_size=1, channels=3, num_hidden=(6, 6))),
        ("predrnn_pp", dict(reverse=True), dict(layer_norm=False, num_hidden=(8, 8, 8, 8))),
        # OpenSTL's GHU LayerNorm has the wrong shape, so PredRNN++ with layer_norm=1 cannot run there.
    ]
    worst = 0.0
    for arch, flags, changes in cases:
        worst = max(worst, run_case(openstl, arch, **flags, **{**base, **changes}))
    verdict = "OK" if worst < TOLERANCE else "MISMATCH"
    print(f"worst difference {worst:.3g} (tolerance {TOLERANCE:g}): {verdict}")
    return 0 if worst < TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
