"""`mimviewer train`: a researcher trains a small model, stops, resumes, and gets the same weights."""

import itertools
import json

import numpy as np
import pytest
import torch

from mimviewer.cli import build_parser, main
from mimviewer.errors import MimviewerError
from mimviewer.train import (
    TrainConfig,
    balanced_weights,
    evaluate,
    learning_rate,
    make_data,
    sampling_mask,
    sampling_probabilities,
    train,
)

TINY = dict(num_hidden=(8,), filter_size=3, patch_size=4, pre=3, aft=3)


def tiny_config(**changes) -> TrainConfig:
    fields = dict(
        arch="convlstm",
        model=TINY,
        data="digits",
        size=16,
        steps=4,
        batch_size=4,
        lr=1e-2,
        schedule="cosine",
        warmup=1,
        val_every=1000,
        val_sequences=4,
        checkpoint_every=1000,
    )
    return TrainConfig(**(fields | changes))


def weights(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def held_out_mse(model, cfg: TrainConfig) -> float:
    data = make_data(cfg, 6)
    return evaluate(model, data.held_out, data.units)["model"]["mse"]


def test_a_few_steps_lower_the_loss(tmp_path):
    cfg = tiny_config(steps=20, schedule="constant", lr=2e-2, sampling="none")
    untrained = train(cfg, tmp_path / "zero", stop_after=0, log=lambda _: None).model
    before = held_out_mse(untrained, cfg)
    result = train(cfg, tmp_path / "run", log=lambda _: None)
    assert result.step == 20
    assert np.mean(result.losses[-5:]) < 0.7 * np.mean(result.losses[:5])
    assert held_out_mse(result.model, cfg) < before


def test_resume_gives_the_same_weights_as_training_straight_through(tmp_path):
    cfg = tiny_config(sampling="reverse", sampling_start=0.0, sampling_stop=1.0)
    straight = train(cfg, tmp_path / "straight", log=lambda _: None)
    stopped = train(cfg, tmp_path / "split", stop_after=2, log=lambda _: None)
    assert stopped.step == 2
    state = torch.load(tmp_path / "split" / "train_state.pt", weights_only=True)
    assert state["step"] == 2 and len(state["losses"]) == 2
    resumed = train(cfg, tmp_path / "split", resume=True, log=lambda _: None)
    assert resumed.step == 4
    assert resumed.losses == straight.losses
    a, b = weights(straight.model), weights(resumed.model)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    first = weights(train(tiny_config(steps=2), tmp_path / "a", log=lambda _: None).model)
    again = weights(train(tiny_config(steps=2), tmp_path / "b", log=lambda _: None).model)
    other = weights(train(tiny_config(steps=2, seed=1), tmp_path / "c", log=lambda _: None).model)
    for k in first:
        np.testing.assert_array_equal(first[k], again[k], err_msg=k)
    assert any(not np.array_equal(first[k], other[k]) for k in first)


def test_scheduled_sampling_decays_from_true_frames_to_own_outputs():
    cfg = tiny_config(steps=100, sampling="linear", sampling_stop=0.5)
    etas = [sampling_probabilities(cfg, s)[1] for s in range(100)]
    assert etas[0] == 1.0 and etas[-1] == 0.0 and etas[60] == 0.0
    assert all(a >= b for a, b in itertools.pairwise(etas))
    rng = torch.Generator().manual_seed(0)
    mask = sampling_mask(cfg, 0, batch=5, pre=3, aft=4, generator=rng)
    assert mask.shape == (5, 3) and mask.all()  # (B, aft-1), every future step reads the truth
    late = sampling_mask(cfg, 99, batch=5, pre=3, aft=4, generator=rng)
    assert not late.any()

    reverse = tiny_config(steps=100, sampling="reverse", sampling_start=0.2, sampling_stop=0.6)
    assert sampling_probabilities(reverse, 0) == (0.5, 0.5)
    context, future = sampling_probabilities(reverse, 99)
    assert (context, future) == (1.0, 0.0)
    mask = sampling_mask(reverse, 99, batch=5, pre=3, aft=4, generator=rng)
    assert mask.shape == (5, 5)  # (B, pre+aft-2): context steps too
    assert mask[:, :2].all() and not mask[:, 2:].any()


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_learning_rate_schedules_peak_at_lr_and_end_low(schedule):
    cfg = tiny_config(steps=200, schedule=schedule, lr=1e-3, warmup=20)
    rates = [learning_rate(cfg, s) for s in range(200)]
    assert max(rates) == pytest.approx(1e-3, rel=0.02)
    assert rates[0] < 1e-3 / 2 and rates[-1] < 1e-3 / 100


def test_cli_trains_and_resumes_a_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", "--arch", "convlstm", "--num-hidden", "4", "--filter-size", "3", "--size", "16"]
    args += ["--pre", "2", "--aft", "2", "--steps", "3", "--batch-size", "2", "--val-every", "2"]
    args += ["--val-sequences", "2", "--out", str(run_dir), "--stop-after", "2"]
    assert main(args) == 0
    assert "step 2/3" in capsys.readouterr().out
    assert main(["train", "--resume", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "step 3/3" in out and json.loads(out.strip().splitlines()[-1])["step"] == 3
    recipe = json.loads((run_dir / "train.json").read_text())
    assert recipe["model"]["num_hidden"] == [4]
    command = TrainConfig.from_json(json.dumps(recipe)).command(str(run_dir))
    given, rebuilt = (
        vars(build_parser().parse_args(args)),
        vars(build_parser().parse_args(command.split()[1:])),
    )
    assert given | {"stop_after": None} == rebuilt  # the recipe reproduces the command
    validation = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [v["step"] for v in validation] == [2, 3]
    assert {"mse", "ssim"} <= validation[0]["model"].keys()
    assert main(args) == 2  # the folder already holds a run: refuse to overwrite it


def test_resuming_a_folder_without_a_run_is_one_clear_error(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_balanced_mse_weighs_heavy_rain_and_refuses_non_radar_data(tmp_path):
    from mimviewer.data.units import rain_rate_to_unit

    rain = torch.tensor([0.0, 1.0, 3.0, 7.0, 20.0, 50.0])  # mm/h
    unit = torch.tensor([float(rain_rate_to_unit(r)) if r > 0 else 0.0 for r in rain.tolist()])
    assert balanced_weights(unit).tolist() == [1.0, 1.0, 2.0, 5.0, 10.0, 30.0]
    with pytest.raises(MimviewerError, match="needs radar data in dBZ"):
        train(tiny_config(loss="balanced"), tmp_path, log=lambda _: None)


def test_trains_on_windows_of_a_sequence_file_with_the_end_held_out(tmp_path):
    from mimviewer.data.synthetic import bouncing_digits

    frames = bouncing_digits(1, length=60, size=16, seed=3)[0]  # (T, C, H, W)
    np.save(tmp_path / "clip.npy", frames)
    cfg = tiny_config(data=str(tmp_path / "clip.npy"), steps=2, val_sequences=3)
    data = make_data(cfg, 6)
    assert data.held_out.shape == (3, 6, 1, 16, 16)
    np.testing.assert_allclose(data.held_out[-1], frames[-6:], atol=1e-6)  # the last window is held out
    assert data.batch(0, 4).shape == (4, 6, 1, 16, 16)
    assert train(cfg, tmp_path / "run", log=lambda _: None).step == 2
    short = tiny_config(data=str(tmp_path / "short.npy"))
    np.save(tmp_path / "short.npy", frames[:20])
    with pytest.raises(MimviewerError, match="too few"):
        make_data(short, 6)
