"""Check mimviewer's MIM and E3D-LSTM against OpenSTL's own code, live.

OpenSTL's model and module files are imported straight from a checkout (default
/tmp/openstl, or the OPENSTL_DIR environment variable) with its package imports stubbed
(tools/openstl_reference.py), so none of its heavy dependencies are needed and none of its
files live in this repository.
For each config the script builds OpenSTL's model with random weights (peepholes and
LayerNorms included), loads its state dict into ours (strict, after dropping
``unused_checkpoint_keys``), runs both on the same frames (scheduled-sampling mask all
zeros, as at inference) and prints the largest absolute difference of the outputs.

MIM: OpenSTL keeps MIM-S's memory on each MIMBlock (``convlstm_c``) between calls. The
script resets it before each reference call, and also shows that without the reset
OpenSTL's second call on the very same input differs, while ours repeats exactly.

    .venv/bin/python tools/parity_mim_e3d.py
"""

from __future__ import annotations

import re
import sys

import torch
from openstl_reference import OpenSTL, check_cases, copy_weights  # tools/, beside this script

from mimviewer.nets import create_model, patchify

TOLERANCE = 1e-5


def randomise(model: torch.nn.Module) -> None:
    """Make every weight matter: peepholes (zero at init), LayerNorms away from (1, 0), convs louder."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim >= 4:  # conv kernels: PyTorch's init leaves deep stacks nearly silent
                param.mul_(3.0)
            elif name.endswith(("ct_weight", "oc_weight")):
                param.uniform_(-0.5, 0.5)
            elif ("_norm_c_t" in name or re.search(r"\.1\.(weight|bias)$", name)) and param.ndim >= 3:
                param.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(param))


def reset_leaked_state(model: torch.nn.Module, block_class: type) -> None:
    """OpenSTL's MIMBlock keeps MIM-S's cell state between calls; forget it."""
    for module in model.modules():
        if isinstance(module, block_class):
            module.convlstm_c = None


def run_case(openstl: OpenSTL, arch: str, **cfg) -> float:
    torch.manual_seed(0)
    pre, aft, channels, height, width = cfg["pre"], cfg["aft"], cfg["channels"], cfg["height"], cfg["width"]
    p, hidden = cfg["patch_size"], cfg["num_hidden"]
    theirs = openstl.build(arch, **cfg).eval()
    randomise(theirs)
    ours = create_model(arch, **cfg).eval()
    copy_weights(theirs, ours)

    batch = 2
    frames = torch.rand(batch, pre + aft, channels, height, width)  # (B, T, C, H, W)
    patched = patchify(frames, p).permute(0, 1, 3, 4, 2)  # OpenSTL's layout: (B, T, H', W', p*p*C)
    mask_true = torch.zeros(batch, aft - 1, *patched.shape[2:])

    def reference() -> torch.Tensor:
        out, _ = theirs(patched, mask_true, return_loss=False)  # (B, steps, H', W', p*p*C)
        return out.permute(0, 1, 4, 2, 3)  # (B, steps, p*p*C, H', W')

    with torch.no_grad():
        reset_leaked_state(theirs, openstl.cells.MIMBlock)
        their_first = reference()
        their_leaky = reference()  # MIM: S left over from the first call
        our_first = patchify(ours(frames, pre, aft), p)
        our_second = patchify(ours(frames, pre, aft), p)
    diff = (our_first - their_first).abs().max().item()
    line = f"{arch:8s} layer_norm={int(cfg['layer_norm'])} hidden={list(hidden)} patch={p} C={channels}"
    line += f" {height}x{width} k={cfg['filter_size']}: max |output diff| = {diff:.3g}"
    line += f" (outputs std {their_first.std().item():.3g})"
    if arch == "mim":
        leak = (their_leaky - their_first).abs().max().item()
        repeat = (our_second - our_first).abs().max().item()
        line += f"; second call on the same input: OpenSTL moves by {leak:.3g}, ours by {repeat:.3g}"
        diff = max(diff, repeat)
    print(line)
    return diff


def main() -> int:
    cases = [
        ("mim", dict(layer_norm=False)),
        ("mim", dict(layer_norm=True)),
        ("mim", dict(layer_norm=False, patch_size=4, channels=1, filter_size=5, num_hidden=(6, 6, 6, 6))),
        ("mim", dict(layer_norm=True, patch_size=1, channels=3, num_hidden=(4, 4))),
        ("mim", dict(layer_norm=False, num_hidden=(8,))),
        ("mim", dict(layer_norm=True, pre=10, aft=10, num_hidden=(8, 8, 8, 8))),  # long rollout
        # OpenSTL's E3D-LSTM ignores filter_size and always uses (2, 5, 5) kernels
        ("e3d_lstm", dict(layer_norm=False, filter_size=5, num_hidden=(4, 4))),
        ("e3d_lstm", dict(layer_norm=True, filter_size=5, num_hidden=(4, 4, 4))),
        ("e3d_lstm", dict(layer_norm=False, filter_size=5, patch_size=1, channels=3, num_hidden=(3,))),
        ("e3d_lstm", dict(layer_norm=True, filter_size=5, patch_size=4, channels=1, num_hidden=(4, 4))),
        ("e3d_lstm", dict(layer_norm=True, filter_size=5, pre=10, aft=10, num_hidden=(6, 6, 6))),
    ]
    return check_cases(run_case, cases, TOLERANCE)


if __name__ == "__main__":
    sys.exit(main())
