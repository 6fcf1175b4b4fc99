"""Read every checkpoint flavour, infer the model config from the weights, write our own format.

One job per module: ``safe_load`` (unpickling that never runs code), ``formats`` (where each
flavour keeps its weights), ``openstl`` (OpenSTL hyper-parameters and config files), ``infer``
(the config from the weights: each architecture declares how its weights look, in its own
``mimviewer/nets`` module), ``load`` (a ready model) and ``ours`` (save / describe).
"""

from mimviewer.checkpoints.formats import CONFIG_KEY, FORMAT_KEY, FORMAT_VERSION
from mimviewer.checkpoints.infer import detect_arch, infer_config_fields, resolve_config
from mimviewer.checkpoints.load import LoadedCheckpoint, load_checkpoint, load_for_input, load_weights
from mimviewer.checkpoints.openstl import OPENSTL_METHODS, openstl_fields, read_config_file
from mimviewer.checkpoints.ours import describe_checkpoint, save_checkpoint

__all__ = [
    "CONFIG_KEY",
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "OPENSTL_METHODS",
    "LoadedCheckpoint",
    "describe_checkpoint",
    "detect_arch",
    "infer_config_fields",
    "load_checkpoint",
    "load_for_input",
    "load_weights",
    "openstl_fields",
    "read_config_file",
    "resolve_config",
    "save_checkpoint",
]
