"""Train any registry architecture on synthetic or real sequences, resumable and seeded.

One run lives in one folder::

    RUN_DIR/train.json          the TrainConfig (what to train, how; the reproducible recipe)
    RUN_DIR/model.safetensors   latest weights in our own self-describing format
    RUN_DIR/train_state.pt      step, that step's weights, optimizer, RNG state, loss history:
                                plain tensors/dicts, loadable with torch.load(weights_only=True);
                                resuming reads the weights from here, so a kill between
                                the two files' writes never mixes two steps (resume.py)
    RUN_DIR/log.jsonl           one JSON line per validation

Determinism: the model is initialised from ``seed``; training batch ``k`` is generated
from a seed derived from ``(seed, k)`` (or sliced from a real sequence with a generator
seeded the same way); the scheduled-sampling masks come from one torch.Generator whose
state is saved. The learning rate is a pure function of the step. So "train N steps" and
"train k steps, stop, resume" give the same weights.

Scheduled sampling follows the PredRNN papers: during training each predicted step reads
the true frame with probability ``eta`` (else the model's own output); ``eta`` decays
linearly from 1 to 0 ("linear", PredRNN) or, with "reverse" (PredRNN-V2), the context
steps start at 0.5 and rise to 1 while the future steps fall from 0.5 to 0.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mimviewer.atomic import atomic_file, write_text
from mimviewer.errors import DataError, MimviewerError
from mimviewer.limits import check_train_values, check_training, json_object, memory_budget, shorten
from mimviewer.nets import ModelConfig, RecurrentModel, create_model, default_config

SYNTHETIC = ("digits", "storms")
SCHEDULES = ("cosine", "onecycle", "constant")
SAMPLINGS = ("linear", "reverse", "none")
# mse; mse+mae (the L2 + L1 loss of E3D-LSTM: the L1 term keeps the empty background at
# zero instead of a grey haze); balanced (B-MSE + B-MAE of the HKO-7 benchmark, Shi et al.
# 2017, for radar in dBZ: a pixel whose true rain rate is at least THRESHOLD mm/h weighs
# WEIGHT, so the rare heavy rain is not blurred away).
LOSSES = ("mse", "mse+mae", "balanced")
BMSE_WEIGHTS: tuple[tuple[float, float], ...] = ((2.0, 2.0), (5.0, 5.0), (10.0, 10.0), (30.0, 30.0))

# Seeds of the synthetic sets, far apart so that training, validation and test never overlap.
TRAIN_SEED_STRIDE = 1_000_000  # batch k of a run with seed s uses s * stride + k
VALIDATION_SEED = 900_000_000  # + the run's seed
VARIANT_FLAGS = ("peephole", "cifg")  # yes/no model options that `mimviewer train` takes as flags
TEST_SEED = 990_000_000  # the model cards' held-out test set


@dataclass
class TrainConfig:
    """A training run's recipe; stored as RUN_DIR/train.json and in the checkpoint's metadata."""

    arch: str = "convlstm"  # registry name
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides (num_hidden, ...)
    data: str = "digits"  # "digits", "storms" or a path that mimviewer.data.open_sequence reads
    size: int = 64  # frame size of the synthetic generators
    steps: int = 1000  # optimizer steps of the whole run (the schedules span this)
    batch_size: int = 16
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.01  # AdamW
    schedule: str = "cosine"  # cosine (after linear warmup), onecycle, constant
    warmup: int = 50  # warmup steps of the cosine schedule
    clip: float = 1.0  # gradient-norm clip; 0 disables
    loss: str = "mse"  # mse, mse+mae, or balanced (B-MSE + B-MAE; radar data in dBZ only)
    sampling: str = "linear"  # scheduled sampling: linear, reverse, none
    sampling_stop: float = 0.6  # fraction of the run after which eta has reached its final value
    sampling_start: float = 0.2  # reverse only: fraction of the run before eta starts to move
    aux_weight: float = 0.1  # weight of model.auxiliary_loss() (PredRNN-V2's decoupling loss)
    val_every: int = 100  # validate every this many steps
    val_sequences: int = 16  # size of the fixed held-out validation set
    checkpoint_every: int = 50  # write model + train state every this many steps
    seed: int = 0

    def __post_init__(self) -> None:
        check_train_values(dataclasses.asdict(self))  # types, ranges, no division by zero (limits.py)
        if self.schedule not in SCHEDULES:
            raise MimviewerError(f"unknown schedule {self.schedule!r}; use one of {', '.join(SCHEDULES)}")
        if self.sampling not in SAMPLINGS:
            raise MimviewerError(f"unknown sampling {self.sampling!r}; use one of {', '.join(SAMPLINGS)}")
        if self.loss not in LOSSES:
            raise MimviewerError(f"unknown loss {self.loss!r}; use one of {', '.join(LOSSES)}")
        if self.steps < 1 or self.batch_size < 1:
            raise MimviewerError(f"steps and batch size must be >= 1, got {self.steps}, {self.batch_size}")

    def model_config(
        self, frame: tuple[int, int, int] | None = None, units: str | None = None
    ) -> ModelConfig:
        """The model's config; the data's ``frame`` (C, H, W) and units fill what the flags leave open."""
        overrides = dict(self.model)
        if self.data == "storms":
            overrides.setdefault("units", "dBZ")
        if units is not None:
            overrides.setdefault("units", units)
        if self.data in SYNTHETIC:
            frame = frame or (1, self.size, self.size)
        if frame is not None:
            for name, value in zip(("channels", "height", "width"), frame, strict=True):
                overrides.setdefault(name, int(value))
        return default_config(self.arch, **overrides)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def command(self, out: str = "RUN_DIR") -> str:
        """The ``mimviewer train`` command line that reproduces this run (model cards print it)."""
        words = ["mimviewer", "train", "--arch", self.arch, "--data", self.data]
        for name, value in self.model.items():
            if name == "num_hidden":
                words += ["--num-hidden", ",".join(str(n) for n in value)]
            elif name == "layer_norm":
                words += ["--layer-norm"] if value else []
            elif name in ("filter_size", "patch_size", "pre", "aft"):
                words += [f"--{name.replace('_', '-')}", str(value)]
            elif name == "options" and all(k in VARIANT_FLAGS and v is True for k, v in value.items()):
                words += [f"--{k}" for k in sorted(value)]  # gate variants: --peephole, --cifg
            else:
                raise MimviewerError(f"model field {name!r} has no train flag")
        defaults = TrainConfig()
        for f in dataclasses.fields(self):
            if f.name in ("arch", "model", "data"):
                continue
            value = getattr(self, f.name)
            if value != getattr(defaults, f.name):
                words += [f"--{f.name.replace('_', '-')}", str(value)]
        return shlex.join([*words, "--out", out])

    @classmethod
    def from_json(cls, text: str, source: str = "train.json") -> TrainConfig:
        """A recipe from JSON; anything malformed is one MimviewerError naming ``source``."""
        d = json_object(
            text,
            MimviewerError,
            f"{source}: not valid JSON",
            f"{source}: expected a JSON object (a training recipe)",
        )
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise MimviewerError(f"{source}: unknown field(s) {shorten(sorted(unknown), 80)}")
        try:
            check_train_values(d)
            d["model"] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.get("model", {}).items()}
            return cls(**d)
        except MimviewerError as exc:
            raise MimviewerError(f"{source}: {exc}") from None


# -- data --------------------------------------------------------------------------------
def synthetic_frames(kind: str, num_sequences: int, length: int, size: int, seed: int) -> np.ndarray:
    """(N, T, 1, H, W) float32 in model scale [0, 1] from one of the bundled generators."""
    from mimviewer.data import synthetic

    if kind == "digits":
        return synthetic.bouncing_digits(num_sequences, length=length, size=size, seed=seed)
    if kind == "storms":
        from mimviewer.data import units

        dbz = synthetic.radar_storms(num_sequences, length=length, size=size, seed=seed)
        return np.clip(units.dbz_to_unit(dbz), 0.0, 1.0).astype(np.float32)
    raise MimviewerError(f"unknown synthetic data {kind!r}; use one of {', '.join(SYNTHETIC)}")


class TrainingData:
    """Training batches (a pure function of the step) and a fixed held-out set."""

    def __init__(
        self,
        batch: Callable[[int, int], np.ndarray],
        held_out: np.ndarray,
        units: str,
        description: str,
    ):
        self._batch = batch
        self.held_out = held_out  # (N, T, C, H, W) in [0, 1]
        self.units = units
        self.description = description

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self._batch(step, batch_size), dtype=np.float32))


def make_data(cfg: TrainConfig, length: int) -> TrainingData:
    if cfg.data in SYNTHETIC:
        kind, size = cfg.data, cfg.size
        return TrainingData(
            batch=lambda step, n: synthetic_frames(
                kind, n, length, size, cfg.seed * TRAIN_SEED_STRIDE + step
            ),
            held_out=synthetic_frames(kind, cfg.val_sequences, length, size, VALIDATION_SEED + cfg.seed),
            units="dBZ" if kind == "storms" else "intensity",
            description=f"synthetic {kind}, {size}x{size}",
        )
    return sequence_data(Path(cfg.data), length, cfg.val_sequences, cfg.seed)


def sequence_data(path: Path, length: int, val_windows: int, seed: int) -> TrainingData:
    """Random windows from the first 90% of a sequence; the last 10% is held out."""
    from mimviewer.data import open_sequence

    seq = open_sequence(path)
    total = len(seq)
    # Read whole when it fits a quarter of the memory budget (fast batches), else window by window.
    whole = total * math.prod(seq.shape[1:]) * 4 <= memory_budget() // 4
    frames = seq.frames(0, total) if whole else _Windows(seq)  # (T, C, H, W) in [0, 1]
    split = int(total * 0.9)
    if split < length or total - split < length:
        raise DataError(
            f"{path}: {total} frames are too few to train on windows of {length} frames "
            f"with 10% held out (need at least {10 * length})"
        )
    held_starts = np.linspace(split, total - length, num=val_windows).astype(int)
    held_out = np.stack([frames[s : s + length] for s in held_starts])

    def batch(step: int, n: int) -> np.ndarray:
        starts = np.random.default_rng((seed, step)).integers(0, split - length + 1, size=n)
        return np.stack([frames[s : s + length] for s in starts])

    return TrainingData(batch, held_out, seq.meta.units, f"{path.name}, {total} frames")


class _Windows:
    """``frames[s : s + n]`` of a sequence too long to hold, read from the file on each slice."""

    def __init__(self, seq: Any):
        self._seq = seq

    def __getitem__(self, window: slice) -> np.ndarray:
        return self._seq.frames(window.start, window.stop)


# -- schedules ---------------------------------------------------------------------------
def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): a pure function, so resume is exact."""
    progress = step / max(1, cfg.steps - 1)
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "onecycle":  # 30% warmup from lr/25, cosine down to lr/1e4
        if progress < 0.3:
            return cfg.lr / 25 + (cfg.lr - cfg.lr / 25) * progress / 0.3
        return cfg.lr / 1e4 + (cfg.lr - cfg.lr / 1e4) * 0.5 * (1 + math.cos(math.pi * (progress - 0.3) / 0.7))
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    decay = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * decay))


def sampling_probabilities(cfg: TrainConfig, step: int) -> tuple[float, float]:
    """(context eta, future eta): probabilities that a step reads the true frame."""
    progress = step / cfg.steps
    if cfg.sampling == "none":
        return 1.0, 0.0
    if cfg.sampling == "linear":
        return 1.0, max(0.0, 1.0 - progress / cfg.sampling_stop)
    start, stop = cfg.sampling_start, cfg.sampling_stop
    if progress < start:
        return 0.5, 0.5
    if progress < stop:
        alpha = (stop - start) / 5  # the context eta is within 1% of 1 when the future eta hits 0
        context = 1.0 - 0.5 * math.exp(-(progress - start) / alpha)
        future = 0.5 - 0.5 * (progress - start) / (stop - start)
        return context, future
    return 1.0, 0.0


def sampling_mask(
    cfg: TrainConfig, step: int, batch: int, pre: int, aft: int, generator: torch.Generator
) -> torch.Tensor | None:
    """The mask RecurrentModel.generate takes: (B, aft-1), or (B, pre+aft-2) for reverse."""
    context, future = sampling_probabilities(cfg, step)
    if cfg.sampling == "none":
        return None
    draws = torch.rand(batch, pre + aft - 2, generator=generator)  # one draw per step t >= 1
    eta = torch.cat([torch.full((pre - 1,), context), torch.full((aft - 1,), future)])
    mask = (draws < eta).float()
    return mask if cfg.sampling == "reverse" else mask[:, pre - 1 :]


# -- evaluation --------------------------------------------------------------------------
@torch.no_grad()
def predict(model: RecurrentModel, frames: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """The ``aft`` predicted frames of every sequence: (N, aft, C, H, W), clipped to [0, 1]."""
    cfg = model.config
    model.eval()
    device = next(model.parameters()).device
    out = []
    for chunk in frames.split(batch_size):
        outputs = model(chunk.to(device), cfg.pre, cfg.aft)
        out.append(outputs[:, -cfg.aft :].float().clamp(0, 1).cpu())
    return torch.cat(out)


def evaluate(model: RecurrentModel, frames: np.ndarray, units: str) -> dict[str, dict[str, float]]:
    """Mean per-frame metrics of the model and of two baselines that know nothing of motion.

    "persistence" repeats the last context frame; "blank" predicts empty frames (zeros: no
    ink, no rain), which on sparse data already scores well on MSE and SSIM, so a model
    should beat both.
    """
    from mimviewer.metrics import frame_metrics

    cfg = model.config
    frames_t = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    truth = frames[:, cfg.pre : cfg.pre + cfg.aft]
    predictions = {
        "model": predict(model, frames_t).numpy(),
        "persistence": np.repeat(frames[:, cfg.pre - 1 : cfg.pre], cfg.aft, axis=1),
        "blank": np.zeros_like(truth),
    }
    return {
        who: {k: _mean_over_frames(v) for k, v in frame_metrics(truth, prediction, units=units).items()}
        for who, prediction in predictions.items()
    }


def _mean_over_frames(values: np.ndarray) -> float:
    """Mean over the frames where a score is defined (FAR has no value without forecast rain)."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


# -- the loop ----------------------------------------------------------------------------
def configure_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def balanced_weights(truth: torch.Tensor) -> torch.Tensor:
    """Per-pixel HKO-7 weights of frames in model scale (dBZ data): 1, 2, 5, 10, 30 by rain rate."""
    from mimviewer.data.units import rain_rate_to_unit

    weights = torch.ones_like(truth)
    previous = 1.0
    for rain, weight in BMSE_WEIGHTS:
        weights += (weight - previous) * (truth >= float(rain_rate_to_unit(rain))).to(truth.dtype)
        previous = weight
    return weights


def loss_of(
    model: RecurrentModel,
    frames: torch.Tensor,
    mask: torch.Tensor | None,
    aux_weight: float,
    kind: str = "mse",
) -> torch.Tensor:
    """The loss of every step's output against the frame it predicts, plus the auxiliary loss."""
    cfg = model.config
    steps = cfg.pre + cfg.aft - 1
    outputs = model(frames, cfg.pre, cfg.aft, sampling_mask=mask)  # (B, steps, C, H, W)
    truth = frames[:, 1 : steps + 1]
    error = outputs.float() - truth
    if kind == "mse":
        loss = (error**2).mean()
    elif kind == "mse+mae":
        loss = (error**2 + error.abs()).mean()
    else:  # balanced
        loss = (balanced_weights(truth) * (error**2 + error.abs())).mean()
    aux = model.auxiliary_loss()
    if aux is not None:
        loss = loss + aux_weight * aux.float()
    return loss


def _format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class RunResult:
    run_dir: Path
    step: int
    losses: list[float]
    model: RecurrentModel


def train(
    cfg: TrainConfig,
    run_dir: str | Path,
    *,
    device: str = "auto",
    resume: bool = False,
    stop_after: int | None = None,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Train (or continue) the run in ``run_dir``; returns after ``cfg.steps`` or ``stop_after`` steps."""
    from mimviewer.checkpoint_guard import check_against_model
    from mimviewer.checkpoints import load_checkpoint, load_weights, save_checkpoint
    from mimviewer.inference import pick_device
    from mimviewer.resume import resume_point

    run_dir = Path(run_dir)
    dev = pick_device(device)
    configure_device(dev)
    pre, aft = cfg.model_config().pre, cfg.model_config().aft
    if cfg.data in SYNTHETIC:  # the generated held-out set counts too: checked before it is made
        check_training(cfg.model_config(), pre, aft, cfg.batch_size, cfg.val_sequences)
    data = make_data(cfg, pre + aft)
    model_cfg = cfg.model_config(frame=data.held_out.shape[2:], units=data.units)
    check_training(model_cfg, pre, aft, cfg.batch_size, cfg.val_sequences)
    if cfg.loss == "balanced" and data.units != "dBZ":
        raise MimviewerError(
            f"--loss balanced weighs rain rates and needs radar data in dBZ, not {data.units}"
        )

    state_path = run_dir / "train_state.pt"
    if resume:  # the state's own weights and step stamp: never a mix of two steps (mimviewer/resume.py)
        point = resume_point(run_dir)
        if point.note:
            log(point.note)
        if point.weights is None:
            model = load_checkpoint(run_dir / "model.safetensors").model
        else:
            check_against_model(state_path, model_cfg, point.weights, create_model, load_weights)
            model = create_model(model_cfg)
            model.load_state_dict(point.weights, strict=True)
        state = point.state
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "train.json", cfg.to_json() + "\n")
        torch.manual_seed(cfg.seed)
        model = create_model(model_cfg)
        state = None
    model.to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    mask_rng = torch.Generator().manual_seed(cfg.seed)
    step, losses, wall = 0, [], 0.0
    if state is not None:
        try:
            optimizer.load_state_dict(state["optimizer"])
            mask_rng.set_state(state["mask_rng"])
        except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
            raise MimviewerError(
                f"{state_path}: its optimizer or generator state does not fit this run "
                f"({shorten(str(exc), 80)})"
            ) from None
        step, losses, wall = int(state["step"]), list(state["losses"]), float(state["wall_s"])

    def save(wall_s: float) -> None:
        metadata = {
            "train": cfg.to_json(),
            "train_steps": str(step),
            "train_wall_s": f"{wall_s:.0f}",
            "train_device": _device_name(dev),
        }
        save_checkpoint(run_dir / "model.safetensors", model, metadata)
        state = {
            "step": step,  # the stamp model.safetensors carries as train_steps
            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "mask_rng": mask_rng.get_state(),
            "losses": losses,
            "wall_s": wall_s,
        }
        with atomic_file(state_path) as f:
            torch.save(state, f)

    autocast = dev.type == "cuda"
    held_out = torch.from_numpy(data.held_out)
    end = cfg.steps if stop_after is None else min(cfg.steps, step + stop_after)
    started, first = time.perf_counter(), step
    while step < end:
        model.train()
        frames = data.batch(step, cfg.batch_size).to(dev)
        mask = sampling_mask(cfg, step, frames.shape[0], pre, aft, mask_rng)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            loss = loss_of(model, frames, None if mask is None else mask.to(dev), cfg.aux_weight, cfg.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        optimizer.step()
        losses.append(float(loss.detach()))
        step += 1
        elapsed = time.perf_counter() - started
        if step % cfg.checkpoint_every == 0 or step == end or step % cfg.val_every == 0:
            eta = elapsed / (step - first) * (cfg.steps - step)
            recent = float(np.mean(losses[-cfg.checkpoint_every :]))
            line = (
                f"step {step}/{cfg.steps}  loss {recent:.5f}  lr {learning_rate(cfg, step - 1):.2e}  "
                f"eta(true frames) {sampling_probabilities(cfg, step - 1)[1]:.2f}  "
                f"elapsed {_format_duration(wall + elapsed)}  ETA {_format_duration(eta)}"
            )
            if step % cfg.val_every == 0 or step == cfg.steps:
                scores = evaluate(model, held_out.numpy(), data.units)
                m, p = scores["model"], scores["persistence"]
                line += f"  | val mse {m['mse']:.5f} ssim {m['ssim']:.3f}"
                line += f" (persistence {p['mse']:.5f}, {p['ssim']:.3f})"
                with open(run_dir / "log.jsonl", "a") as f:
                    f.write(json.dumps({"step": step, "loss": recent, **scores}) + "\n")
            log(line)
        if step % cfg.checkpoint_every == 0 or step == end:
            save(wall + time.perf_counter() - started)
    return RunResult(run_dir, step, losses, model.cpu())


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, threads: {torch.get_num_threads()})"
