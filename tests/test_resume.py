"""A run interrupted anywhere resumes to the weights of a straight run, or refuses; never a mix.

Also: a hostile or broken train_state.pt / train.json, and training flags that make no
sense, end as one line naming the file or the flag.
"""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch

from mimviewer.cli import main
from mimviewer.errors import MimviewerError
from mimviewer.train import TrainConfig, train

TINY = dict(num_hidden=(4,), filter_size=3, patch_size=4, pre=2, aft=2)


def tiny(**changes) -> TrainConfig:
    fields = dict(
        arch="convlstm", model=TINY, data="digits", size=16, steps=6, batch_size=2, lr=1e-2,
        warmup=1, val_every=1000, val_sequences=2, checkpoint_every=2, sampling="linear",
    )  # fmt: skip
    return TrainConfig(**(fields | changes))


def weights(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


class Killed(BaseException):
    """Stands for SIGKILL / Ctrl-C arriving between two writes (not an Exception: nothing catches it)."""


def kill_at_torch_save(monkeypatch, call: int) -> None:
    """Interrupt the run when train_state.pt is written for the ``call``-th time (model already written)."""
    real, calls = torch.save, []

    def save(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_a_kill_between_the_two_writes_resumes_to_the_straight_run(tmp_path, monkeypatch) -> None:
    cfg = tiny()
    straight = weights(train(cfg, tmp_path / "straight", log=lambda _: None).model)
    run_dir = tmp_path / "killed"
    with monkeypatch.context() as patch:
        kill_at_torch_save(patch, call=2)  # step 4: model.safetensors written, train_state.pt not
        with pytest.raises(Killed):
            train(cfg, run_dir, log=lambda _: None)
    from mimviewer.resume import model_step, read_state

    assert (
        model_step(run_dir / "model.safetensors") == 4 and read_state(run_dir / "train_state.pt")["step"] == 2
    )
    lines: list[str] = []
    resumed = train(cfg, run_dir, resume=True, log=lines.append)
    assert any("different steps" in line and "resuming from step 2" in line for line in lines)
    assert resumed.step == 6
    for k, v in straight.items():
        np.testing.assert_array_equal(weights(resumed.model)[k], v, err_msg=k)


def test_an_old_state_without_its_own_weights_is_refused_when_the_steps_differ(tmp_path, monkeypatch) -> None:
    cfg = tiny()
    run_dir = tmp_path / "old"
    with monkeypatch.context() as patch:
        kill_at_torch_save(patch, call=2)
        with pytest.raises(Killed):
            train(cfg, run_dir, log=lambda _: None)
    state = torch.load(run_dir / "train_state.pt", weights_only=True)
    del state["model"]  # as written before the stamp existed
    torch.save(state, run_dir / "train_state.pt")
    with pytest.raises(MimviewerError, match=r"model.safetensors is at step 4 but train_state.pt at step 2"):
        train(cfg, run_dir, resume=True, log=lambda _: None)


def _run_dir(tmp_path) -> object:
    run_dir = tmp_path / "run"
    train(tiny(steps=2), run_dir, log=lambda _: None)
    return run_dir


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize(
    "damage, expected",
    [
        (
            lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
            "not a readable training state",
        ),
        (lambda p: p.write_bytes(pickle.dumps(_Evil())), "not a readable training state"),
        (lambda p: torch.save([1, 2, 3], p), "not a training state"),
        (
            lambda p: torch.save({"step": 1}, p),
            r"not a training state \(no losses, mask_rng, optimizer, wall_s\)",
        ),
        (
            lambda p: torch.save({**torch.load(p, weights_only=True), "losses": [0.1]}, p),
            "loss history does not have one value per step",
        ),
        (lambda p: torch.save({**torch.load(p, weights_only=True), "step": -3}, p), "its step is -3"),
        (lambda p: p.write_bytes(b"\x00" * 100), "not a readable training state"),
    ],
    ids=["truncated", "code", "list", "keys", "losses", "negative-step", "zeros"],
)
def test_a_broken_or_hostile_train_state_is_one_line_naming_it(tmp_path, capsys, damage, expected) -> None:
    run_dir = _run_dir(tmp_path)
    damage(run_dir / "train_state.pt")
    assert main(["train", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train_state.pt" in err
    assert re.search(expected, err), err


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{not json", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "not valid JSON|expected a JSON object"),
        ('{"steps": "many"}', "--steps must be a number"),
        ('{"checkpoint_every": 0}', "--checkpoint-every must be in 1..1e"),
        ('{"hack": 1}', "unknown field"),
        ('{"model": {"num_hidden": [[[[[[[[[[[1]]]]]]]]]]]}}', "nested deeper"),
        ("[]", "expected a JSON object"),
    ],
)
def test_a_bad_train_json_is_one_line_naming_it(tmp_path, capsys, text, expected) -> None:
    run_dir = _run_dir(tmp_path)
    (run_dir / "train.json").write_text(text)
    assert main(["train", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train.json" in err
    assert re.search(expected, err), err


def test_a_binary_train_json_is_one_line(tmp_path, capsys) -> None:
    run_dir = _run_dir(tmp_path)
    (run_dir / "train.json").write_bytes(bytes(range(256)) * 4)
    assert main(["train", "--resume", str(run_dir)]) == 2
    assert "not a training recipe (binary" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, flag",
    [
        (["--checkpoint-every", "0"], "--checkpoint-every"),
        (["--val-every", "0"], "--val-every"),
        (["--sampling-stop", "0"], "--sampling-stop"),
        (["--sampling-stop", "-1"], "--sampling-stop"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "inf"], "--lr"),
        (["--val-sequences", "0"], "--val-sequences"),
        (["--batch-size", "0"], "--batch-size"),
        (["--steps", "0"], "--steps"),
        (["--size", "0"], "--size"),
        (["--threads", "0"], "--threads"),
        (["--aft", "1000000000"], "aft"),
        (["--patch-size", "0"], "patch-size"),
        (["--num-hidden", "0"], "num_hidden"),
    ],
)
def test_train_flags_that_make_no_sense_are_one_line(tmp_path, capsys, flags, flag) -> None:
    argv = ["train", "--arch", "convlstm", "--size", "16", "--out", str(tmp_path / "r"), *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err
    assert not (tmp_path / "r" / "train_state.pt").exists()


def test_a_rollout_too_large_for_the_machine_is_refused_before_any_work(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("MIMVIEWER_MEMORY_LIMIT", str(50 << 20))
    argv = ["train", "--size", "512", "--batch-size", "64", "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "this machine can hold 50 MiB" in err and "lower --batch-size" in err
