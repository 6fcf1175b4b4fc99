"""Recurrent video-prediction models; importing this package registers every architecture."""

from mimviewer.nets import (
    convlstm,  # noqa: F401  (registers)
    e3d_lstm,  # noqa: F401  (registers)
    mim,  # noqa: F401  (registers)
    mim_paper,  # noqa: F401  (registers)
    predrnn,  # noqa: F401  (registers)
    predrnn_pp,  # noqa: F401  (registers)
    predrnn_v2,  # noqa: F401  (registers)
    rnn1d,  # noqa: F401  (registers lstm, lstmp, sru)
)
from mimviewer.nets.base import RecurrentModel, patchify, unpatchify
from mimviewer.nets.config import ModelConfig
from mimviewer.nets.registry import create_model, default_config, list_models, model_entry, register_model

__all__ = [
    "ModelConfig",
    "RecurrentModel",
    "create_model",
    "default_config",
    "list_models",
    "model_entry",
    "patchify",
    "register_model",
    "unpatchify",
]
