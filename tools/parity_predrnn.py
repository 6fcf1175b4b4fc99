"""Check mimviewer's PredRNN, PredRNN-V2 and PredRNN++ against OpenSTL's own code, live.

OpenSTL's model and module files are imported straight from a checkout (default
/tmp/openstl, or the OPENSTL_DIR environment variable) with its package imports stubbed
(tools/openstl_reference.py), so none of its heavy dependencies are needed and none of its
files live in this repository.
For each config the script builds OpenSTL's model with random weights, loads its state
dict into ours (strict, after dropping ``unused_checkpoint_keys``), runs both on the same
frames and prints the largest absolute difference of the predictions (and, for
PredRNN-V2, of the training loss including the decoupling term). It also saves OpenSTL's
weights as a Lightning ``.ckpt`` and checks that ``load_checkpoint`` (config inferred from
the weights) gives the same model.

    .venv/bin/python tools/parity_predrnn.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from openstl_reference import OpenSTL, check_cases, copy_weights  # tools/, beside this script

from mimviewer.checkpoints import load_checkpoint
from mimviewer.nets import create_model

TOLERANCE = 1e-5
DECOUPLE_BETA = 0.1  # PredRNN-V2's weight of the decoupling loss


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


def run_case(openstl: OpenSTL, arch: str, *, reverse: bool = False, train: bool = False, **cfg) -> float:
    torch.manual_seed(0)
    pre, aft, channels, height, width = cfg["pre"], cfg["aft"], cfg["channels"], cfg["height"], cfg["width"]
    p, hidden = cfg["patch_size"], cfg["num_hidden"]
    theirs = openstl.build(arch, **cfg, reverse_scheduled_sampling=reverse, decouple_beta=DECOUPLE_BETA)
    randomise(theirs)
    ours = create_model(arch, **cfg)
    copy_weights(theirs, ours)
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
            our_loss = our_loss + DECOUPLE_BETA * auxiliary
        loss_diff = (our_loss - their_loss).abs().item()
        line += f", |loss diff| = {loss_diff:.3g} (loss {their_loss.item():.5f})"
        diff = max(diff, loss_diff)
    loader_diff = checkpoint_round_trip(theirs, frames, pre, aft, our_frames.detach(), sampling)
    line += f", via load_checkpoint {loader_diff:.3g}"
    diff = max(diff, loader_diff)
    print(line)
    return diff


def main() -> int:
    cases = [
        ("predrnn", dict(layer_norm=False)),
        ("predrnn", dict(layer_norm=True)),
        ("predrnn", dict(layer_norm=False, patch_size=4, channels=1, filter_size=5)),
        ("predrnn", dict(reverse=True, layer_norm=False)),
        ("predrnn_v2", dict(layer_norm=False)),
        ("predrnn_v2", dict(layer_norm=True)),
        ("predrnn_v2", dict(reverse=True, train=True, layer_norm=False)),
        ("predrnn_v2", dict(train=True, layer_norm=True)),
        ("predrnn_pp", dict(layer_norm=False)),
        ("predrnn_pp", dict(layer_norm=False, patch_size=1, channels=3, num_hidden=(6, 6))),
        ("predrnn_pp", dict(reverse=True, layer_norm=False, num_hidden=(8, 8, 8, 8))),
        # OpenSTL's GHU LayerNorm has the wrong shape, so PredRNN++ with layer_norm=1 cannot run there.
    ]
    return check_cases(run_case, cases, TOLERANCE)


if __name__ == "__main__":
    sys.exit(main())
