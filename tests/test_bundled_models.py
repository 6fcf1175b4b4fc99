"""The bundled demo models: each loads, predicts, beats persistence, and its card tells the truth."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from mimviewer.checkpoints import load_checkpoint
from mimviewer.inference import rollout
from mimviewer.paths import bundled_models_dir
from mimviewer.trace import ProbeSpec

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = (
    "convlstm_digits",
    "predrnn_digits",
    "mim_digits",
    "predrnn_storms",
    "mim_storms",
    "mim_paper_storms",
    "convlstm_peephole_storms",
)
MAX_BYTES = 25_000_000


@pytest.fixture(scope="module")
def cards_tool():
    spec = importlib.util.spec_from_file_location("make_model_cards", ROOT / "tools" / "make_model_cards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bundled(name: str) -> Path:
    return bundled_models_dir() / f"{name}.safetensors"


def card_of(name: str) -> dict:
    return json.loads(bundled(name).with_suffix(".json").read_text())


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_is_small_self_describing_and_predicts_with_probes(name):
    path = bundled(name)
    assert path.stat().st_size <= MAX_BYTES
    loaded = load_checkpoint(path)
    assert loaded.format == "mimviewer" and "train" in loaded.metadata
    cfg = loaded.config
    assert (cfg.height, cfg.width, cfg.pre, cfg.aft) == (64, 64, 10, 10)
    assert cfg.units == ("dBZ" if name.endswith("storms") else "intensity")
    card = card_of(name)
    frames = cards_tool_frames(card, 1)
    result = rollout(loaded.model, frames, probes=ProbeSpec(), device="cpu")
    assert result.prediction.shape == (1, 10, 1, 64, 64)
    assert result.trace.num_layers == cfg.num_layers and result.trace.has(0, "f")


def cards_tool_frames(card: dict, num_sequences: int):
    from mimviewer.train import synthetic_frames

    test = card["test"]
    kind = "digits" if test["generator"] == "bouncing_digits" else "storms"
    return synthetic_frames(kind, num_sequences, test["length"], test["size"], test["seed"])


@pytest.mark.parametrize("name", BUNDLED)
def test_model_beats_persistence_and_its_card_shows_what_the_script_computes(name, cards_tool):
    card = card_of(name)
    loaded = load_checkpoint(bundled(name))
    metrics = cards_tool.evaluate_spec(loaded, card["test"])
    for who in ("model", "persistence"):
        assert metrics[who].keys() == card["metrics"][who].keys()
        for key, value in metrics[who].items():
            stated = card["metrics"][who][key]
            # Cards are computed in float32, whose last bits depend on the CPU's kernels. Running
            # the same evaluation in float64 moves every metric by at most 1.7e-7 relative
            # (measured on all five models; CSI/POD/FAR/HSS did not move): 1e-4 is 500x that.
            same = math.isclose(value, stated, rel_tol=1e-4, abs_tol=1e-6) or (
                math.isnan(value) and math.isnan(stated)
            )
            assert same, (who, key, value, stated)
    model, persistence = metrics["model"], metrics["persistence"]
    assert model["mse"] < 0.8 * persistence["mse"]
    assert model["ssim"] > persistence["ssim"] + 0.02
    assert model["mse"] < metrics["blank"]["mse"]  # it predicts something, not just an empty frame
    if loaded.config.units == "dBZ":  # light, moderate and heavy rain (10 mm/h, about 39 dBZ)
        for threshold in ("0.5", "2", "10"):
            assert model[f"csi@{threshold}"] > persistence[f"csi@{threshold}"], threshold
    # the markdown is exactly the script's rendering of those numbers
    assert bundled(name).with_suffix(".md").read_text() == cards_tool.render_card(card)
    assert card["command"].startswith(f"mimviewer train --arch {loaded.config.arch} ")


def test_demo_names_a_bundled_digits_model_and_its_generator():
    demo = json.loads((bundled_models_dir() / "demo.json").read_text())
    assert bundled(demo["model"]).is_file()
    assert demo["data"]["generator"] == "bouncing_digits"
    assert {"seed", "length", "size"} <= demo["data"].keys()


def test_saturation_study_of_a_bundled_radar_model_writes_figures_and_numbers(tmp_path):
    from mimviewer.study import study_model, write_study

    loaded = load_checkpoint(bundled("mim_storms"))
    frames = cards_tool_frames(card_of("mim_storms"), 2)
    result = study_model("mim_storms", loaded, frames, lo=0.1, hi=0.9)
    steps = loaded.config.pre + loaded.config.aft - 1
    assert {"L0 f", "L0 f'", "L1 S.f", "L1 N.f"} <= result.saturated.keys()
    assert np.isnan(result.saturated["L1 N.f"][0])  # MIM-N computes no gates at step 0 (no difference yet)
    for label, curve in result.saturated.items():
        defined = curve[~np.isnan(curve)]
        assert curve.shape == (steps,) and len(defined) >= steps - 1, label
        assert ((defined >= 0) & (defined <= 1)).all(), label
        # saturation where the rain is is measured on a subset of the same gates
        assert np.nanmax(result.saturated_active[label]) <= 1
        np.testing.assert_allclose(
            curve, result.saturated_low[label] + result.saturated_high[label], atol=1e-6
        )
    # MIM-N's input is the difference of H^1: not computed at the first step (NaN), moving afterwards
    assert np.isnan(result.signals["L1 D"][0]) and result.signals["L1 D"][1:].max() > 0
    written = write_study([result], tmp_path)
    assert written["mim_storms_saturation"].stat().st_size > 1000
    numbers = json.loads(written["numbers"].read_text())["mim_storms"]
    assert numbers["L1 S.f saturated"]["prediction"] == pytest.approx(result.saturated["L1 S.f"][9:].mean())
