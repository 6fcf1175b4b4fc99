"""Write the model cards of the bundled models: every number computed here, none typed.

For each ``models/NAME.safetensors`` this evaluates the model and the persistence baseline
(last context frame repeated) on a held-out synthetic test set that no training run sees
(seed ``mimviewer.train.TEST_SEED``), times a 20-frame prediction with every probe on,
and writes ``models/NAME.json`` (the numbers and the test-set spec) and ``models/NAME.md``
(rendered from that JSON only; tests/test_bundled_models.py re-runs the evaluation and
the rendering and fails when either differs)::

    python tools/make_model_cards.py                                   # every bundled model
    python tools/make_model_cards.py --from-run runs/predrnn-digits:predrnn_digits  # bundle a run first
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mimviewer.checkpoints import LoadedCheckpoint, load_checkpoint, save_checkpoint
from mimviewer.inference import rollout
from mimviewer.nets import ModelConfig
from mimviewer.nets.variants import describe_variant
from mimviewer.trace import ProbeSpec
from mimviewer.train import TEST_SEED, TrainConfig, evaluate, synthetic_frames

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
TEST_SEQUENCES = 32
GENERATORS = {"digits": "bouncing_digits", "storms": "radar_storms"}
TRAIN_METADATA = ("train", "train_steps", "train_wall_s", "train_device")
IMAGE_ROWS = ("mse", "mae", "psnr", "ssim")
RADAR_THRESHOLDS = (0.5, 2, 10, 30)  # mm/h shown in the card (the JSON keeps every threshold)
LOWER_IS_BETTER = {"mse", "mae", "far"}
LOSS_NAMES = {
    "mse": "MSE",
    "mse+mae": "MSE + MAE (L2 + L1, as E3D-LSTM)",
    "balanced": "B-MSE + B-MAE (HKO-7 weights 1, 2, 5, 10, 30 at 2, 5, 10, 30 mm/h)",
}


def training_recipe(loaded: LoadedCheckpoint) -> TrainConfig:
    if "train" not in loaded.metadata:
        raise SystemExit(
            f"{loaded.path}: no training recipe in its metadata (was it made by mimviewer train?)"
        )
    return TrainConfig.from_json(loaded.metadata["train"])


def test_spec(recipe: TrainConfig, loaded: LoadedCheckpoint) -> dict[str, Any]:
    """The held-out test set: a generator, its seed and sizes (DESIGN: demo data is generated)."""
    cfg = loaded.config
    return {
        "generator": GENERATORS[recipe.data],
        "num_sequences": TEST_SEQUENCES,
        "length": cfg.pre + cfg.aft,
        "size": cfg.height,
        "seed": TEST_SEED,
    }


def test_frames(spec: dict[str, Any]) -> np.ndarray:
    kind = {v: k for k, v in GENERATORS.items()}[spec["generator"]]
    return synthetic_frames(kind, spec["num_sequences"], spec["length"], spec["size"], spec["seed"])


def evaluate_spec(loaded: LoadedCheckpoint, spec: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Mean per-frame metrics of the model and of persistence on the spec's test set."""
    torch.manual_seed(0)
    return evaluate(loaded.model, test_frames(spec), loaded.config.units)


def time_prediction(loaded: LoadedCheckpoint, repeats: int = 5) -> dict[str, Any]:
    """Median wall time of one 20-frame rollout (pre + aft) with every probe recorded, on CPU."""
    cfg = loaded.config
    frames = test_frames({**test_spec(training_recipe(loaded), loaded), "num_sequences": 1})
    rollout(loaded.model, frames, probes=ProbeSpec(), device="cpu")  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        rollout(loaded.model, frames, probes=ProbeSpec(), device="cpu")
        seconds.append(time.perf_counter() - start)
    return {
        "frames": cfg.pre + cfg.aft,
        "median_s": round(statistics.median(seconds), 4),
        "device": f"CPU ({platform.machine()}, threads: {torch.get_num_threads()})",
    }


def card_data(path: Path) -> dict[str, Any]:
    loaded = load_checkpoint(path)
    recipe = training_recipe(loaded)
    spec = test_spec(recipe, loaded)
    return {
        "name": path.stem,
        "file": path.name,
        "file_bytes": path.stat().st_size,
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "config": loaded.config.to_dict(),
        "train": json.loads(loaded.metadata["train"]),
        "train_steps": int(loaded.metadata["train_steps"]),
        "train_wall_s": float(loaded.metadata["train_wall_s"]),
        "train_device": loaded.metadata["train_device"],
        "command": recipe.command(f"runs/{path.stem}"),
        "test": spec,
        "metrics": evaluate_spec(loaded, spec),
        "speed": time_prediction(loaded),
    }


def _number(name: str, value: float) -> str:
    if name in ("psnr",):
        return f"{value:.2f}"
    if name in ("mse", "mae"):
        return f"{value:.5f}"
    return f"{value:.3f}"


def metric_rows(card: dict[str, Any]) -> list[str]:
    names = list(IMAGE_ROWS)
    if card["config"]["units"] in ("dBZ", "mm/h"):
        names += [f"{s}@{t:g}" for t in RADAR_THRESHOLDS for s in ("csi", "pod", "far", "hss")]
    rows = []
    for name in names:
        scores = {who: card["metrics"][who][name] for who in ("model", "persistence", "blank")}
        lower = name.split("@")[0] in LOWER_IS_BETTER
        valid = {who: v for who, v in scores.items() if v == v}  # NaN (undefined) never wins
        best = (min if lower else max)(valid, key=valid.get) if valid else "-"
        arrow = "lower is better" if lower else "higher is better"
        cells = " | ".join(_number(name, v) for v in scores.values())
        rows.append(f"| {name} ({arrow}) | {cells} | {best} |")
    return rows


def render_card(card: dict[str, Any]) -> str:
    """The markdown card, from the card's JSON alone (so a test can re-render and compare)."""
    cfg, train, test, speed = card["config"], card["train"], card["test"], card["speed"]
    data = "synthetic bouncing digits" if test["generator"] == "bouncing_digits" else "synthetic radar storms"
    units = (
        "reflectivity in dBZ, model scale (dBZ + 10) / 70" if cfg["units"] == "dBZ" else "intensity [0, 1]"
    )
    hidden = ", ".join(str(n) for n in cfg["num_hidden"])
    variant = describe_variant(ModelConfig.from_dict(cfg))  # e.g. peephole ConvLSTM, MIM as in the paper
    lines = [
        f"# {card['name']}",
        "",
        f"{cfg['arch']} trained on {data} ({cfg['height']}x{cfg['width']}, {units}): "
        f"{cfg['pre']} context frames -> {cfg['aft']} predicted frames.",
        "",
        "A small demo model, trained briefly on a shared 2-core CPU without a GPU: it shows what the "
        "gates and memories do, it is not a state-of-the-art predictor. Generated by "
        "`tools/make_model_cards.py`; every number below is computed, none typed.",
        "",
        "## Model",
        "",
        "| field | value |",
        "| --- | --- |",
        f"| architecture | `{cfg['arch']}` |",
        *([f"| variant | {variant} |"] if variant else []),
        f"| hidden channels per layer | {hidden} |",
        f"| filter size | {cfg['filter_size']} |",
        f"| patch size | {cfg['patch_size']} (state grid {cfg['height'] // cfg['patch_size']}x"
        f"{cfg['width'] // cfg['patch_size']}) |",
        f"| layer norm | {'yes' if cfg['layer_norm'] else 'no'} |",
        f"| parameters | {card['parameters']:,} |",
        f"| file | `{card['file']}`, {card['file_bytes'] / 1e6:.2f} MB |",
        "",
        "## Training",
        "",
        "| field | value |",
        "| --- | --- |",
        f"| data | {data}, generated on the fly (batch k from seed {train['seed']} * 1000000 + k) |",
        f"| steps x batch | {card['train_steps']} x {train['batch_size']} |",
        f"| optimizer | AdamW, lr {train['lr']:g}, weight decay {train['weight_decay']:g}, "
        f"{train['schedule']} schedule, clip {train['clip']:g} |",
        f"| loss | {LOSS_NAMES[train['loss']]} |",
        f"| scheduled sampling | {train['sampling']} (true-frame probability reaches its end value at "
        f"{train['sampling_stop']:.0%} of the run) |",
        f"| device | {card['train_device']} |",
        f"| wall time | {card['train_wall_s'] / 60:.1f} min |",
        "",
        "Reproduce (then bundle with `python tools/make_model_cards.py --from-run "
        f"runs/{card['name']}:{card['name']}`):",
        "",
        "```bash",
        card["command"],
        "```",
        "",
        "## Test",
        "",
        f"{test['num_sequences']} held-out sequences of `mimviewer.data.synthetic.{test['generator']}` "
        f"(num_sequences={test['num_sequences']}, length={test['length']}, size={test['size']}, "
        f"seed={test['seed']}), never seen in training. Mean over the {cfg['aft']} predicted frames; "
        "persistence repeats the last context frame, blank predicts empty frames (no ink / no rain: on "
        "sparse frames it already scores well on MSE and SSIM, so it is the bar that shows whether the "
        "model predicts anything at all)."
        + (
            " Skill scores at rain-rate thresholds in mm/h (Marshall-Palmer)."
            if cfg["units"] == "dBZ"
            else ""
        ),
        "",
        "| metric | model | persistence | blank | best |",
        "| --- | --- | --- | --- | --- |",
        *metric_rows(card),
        "",
        "## Speed",
        "",
        f"One {speed['frames']}-frame rollout ({cfg['pre']} context + {cfg['aft']} predicted) with every "
        f"probe recorded: median {speed['median_s'] * 1000:.0f} ms on {speed['device']} "
        "(measured while the machine was shared).",
        "",
    ]
    return "\n".join(lines)


def bundle_run(run_dir: Path, name: str) -> Path:
    """Copy a run's latest weights into models/NAME.safetensors (our format, recipe kept)."""
    loaded = load_checkpoint(run_dir / "model.safetensors")
    metadata = {k: loaded.metadata[k] for k in TRAIN_METADATA}
    target = MODELS_DIR / f"{name}.safetensors"
    save_checkpoint(target, loaded.model, metadata)
    return target


def write_card(path: Path) -> dict[str, Any]:
    card = card_data(path)
    path.with_suffix(".json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    path.with_suffix(".md").write_text(render_card(card))
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="bundled model names (default: all)")
    parser.add_argument("--from-run", action="append", default=[], metavar="RUN_DIR:NAME")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for evaluation and timing")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = list(args.names)
    for item in args.from_run:
        run_dir, name = item.rsplit(":", 1)
        bundle_run(Path(run_dir), name)
        names.append(name)
    paths = (
        [MODELS_DIR / f"{n}.safetensors" for n in names]
        if names
        else sorted(MODELS_DIR.glob("*.safetensors"))
    )
    for path in paths:
        card = write_card(path)
        m, p = card["metrics"]["model"], card["metrics"]["persistence"]
        print(
            f"{path.stem}: mse {m['mse']:.5f} (persistence {p['mse']:.5f}), ssim {m['ssim']:.3f} "
            f"({p['ssim']:.3f}), {card['speed']['median_s'] * 1000:.0f} ms per rollout",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
