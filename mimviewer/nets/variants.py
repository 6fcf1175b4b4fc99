"""One line naming which variant of its architecture a config builds (``mimviewer info`` prints it)."""

from __future__ import annotations

from mimviewer.nets.config import ModelConfig

_MIM = {
    "mim": "MIM as released (official code, OpenSTL): see docs/mim-paper-vs-code.md",
    "mim_paper": "MIM as in the paper's equations (Wang et al. 2019): see docs/mim-paper-vs-code.md",
}


def describe_variant(config: ModelConfig) -> str | None:
    """E.g. "peephole, CIFG (i = 1 - f), layer-normalised gates"; None where there is nothing to say."""
    if config.arch in _MIM:
        return _MIM[config.arch]
    if config.arch not in ("convlstm", "lstm", "lstmp"):
        return None
    parts = []
    if config.flag("peephole"):
        parts.append(
            "peephole (Shi et al. 2015, Hadamard W_c o C)" if config.arch == "convlstm" else "peephole"
        )
    if config.arch != "convlstm":
        if config.flag("cifg"):
            parts.append("CIFG (i = 1 - f)")
        if config.layer_norm:
            parts.append("layer-normalised gates")
    if config.arch == "lstmp":
        parts.append("projection (LSTMP)")
    return ", ".join(parts) or ("plain (OpenSTL, no peepholes)" if config.arch == "convlstm" else "plain")
