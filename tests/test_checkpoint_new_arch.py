"""Adding an architecture touches its own module and the registry only: the checkpoint loader
finds a toy architecture declared inside this test, with no change anywhere else."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mimviewer.checkpoints import detect_arch, load_checkpoint
from mimviewer.nets import RecurrentModel, registry
from mimviewer.nets.registry import register_model


@pytest.fixture
def toy_arch(monkeypatch):
    """A one-conv 'architecture' registered for this test only (the registry is restored after)."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_model("toy_echo", description="toy: a 1x1 conv of the input", num_hidden=(1,))
    class ToyEcho(RecurrentModel):
        weights_priority = 1000  # asked before every built-in architecture

        def __init__(self, config):
            super().__init__(config)
            self.toy_mix = nn.Conv2d(config.patch_channels, config.patch_channels, 1, bias=False)

        @classmethod
        def matches_weights(cls, state_dict) -> bool:
            return "toy_mix.weight" in state_dict

        @classmethod
        def config_from_weights(cls, state_dict, *, channels=None, patch_size=None, frame_size=None):
            patch_channels = int(state_dict["toy_mix.weight"].shape[0])
            return {"arch": cls.arch, "channels": 1, "patch_size": int(patch_channels**0.5)}

        def init_state(self, batch, like):
            return None

        def step(self, x, state, probe):
            return self.toy_mix(x), state

    return ToyEcho


def test_a_toy_architecture_declared_in_the_test_loads_from_a_plain_state_dict(tmp_path, toy_arch):
    weights = {"toy_mix.weight": torch.randn(4, 4, 1, 1)}  # p=2, C=1
    path = tmp_path / "toy.pth"
    torch.save(weights, path)
    assert detect_arch(weights) == "toy_echo"
    loaded = load_checkpoint(path, frame_size=(8, 8))
    assert isinstance(loaded.model, toy_arch)
    assert (loaded.config.arch, loaded.config.patch_size, loaded.config.channels) == ("toy_echo", 2, 1)
    assert torch.equal(loaded.model.toy_mix.weight, weights["toy_mix.weight"])
    out = loaded.model(torch.rand(1, 3, 1, 8, 8), pre=2, aft=1)
    assert out.shape == (1, 2, 1, 8, 8)


def test_the_toy_architecture_is_gone_after_the_test():
    assert "toy_echo" not in registry.list_models()
