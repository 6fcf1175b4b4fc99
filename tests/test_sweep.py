"""`mimviewer sweep`: a checkpoint over a whole data set, resumable, sharded by torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mimviewer import sweep
from mimviewer.checkpoints import load_checkpoint, save_checkpoint
from mimviewer.cli import main
from mimviewer.inference import rollout
from mimviewer.metrics import frame_metrics, summary
from mimviewer.nets import create_model, list_models

REPO = Path(__file__).resolve().parents[1]
TINY = dict(num_hidden=(6, 6), patch_size=2, height=16, width=16, filter_size=3, pre=4, aft=3)


def tiny_checkpoint(tmp_path: Path, arch: str = "mim") -> Path:
    torch.manual_seed(1)
    path = tmp_path / f"{arch}.safetensors"
    save_checkpoint(path, create_model(arch, **TINY))
    return path


def subprocess_env() -> dict[str, str]:
    """One thread per process: float results then do not depend on how many cores a run had."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.mark.parametrize("arch", list_models())
def test_every_gate_of_every_layer_and_the_scores_of_every_sequence(tmp_path, arch):
    ckpt = tiny_checkpoint(tmp_path, arch)
    out = tmp_path / "results.csv"
    assert main(["sweep", str(ckpt), "digits:3", "-o", str(out), "--batch-size", "2", "--quiet"]) == 0
    table = sweep.read_table(out)
    assert list(table["sequence"]) == [0, 1, 2]
    assert set(table["dataset"]) == {"digits:3 seed 0 16x16 7 frames"}
    assert not sweep.parts_dir(out).exists()  # the parts are ours and gone once the file is written
    loaded = load_checkpoint(ckpt)
    model = loaded.model
    for layer in range(model.config.num_layers):
        gates = [q for q in model.quantities(layer) if sweep.is_gate(q)]
        assert gates, f"{arch} layer {layer} has no gate"
        for gate in gates:
            for stat in ("mean", "frac_low", "frac_high"):
                assert f"{layer}/{gate}/{stat}/prediction" in table
        assert f"{layer}/dH/frac_still/prediction" in table
    # sequence 2 by hand: its own draw, rolled out alone, scored by mimviewer.metrics
    frames = sweep.open_dataset("digits:3", channels=1, size=(16, 16), length=7).read(2)
    again = sweep.open_dataset("digits:3", channels=1, size=(16, 16), length=7).read(2)
    np.testing.assert_array_equal(frames, again)
    result = rollout(model, frames[None, :4], 4, 3, probes=sweep.probe_spec(model, 0.1, 0.9, 1e-3))
    scores = summary(frame_metrics(frames[4:], result.prediction[0]))
    np.testing.assert_allclose(table["mse"][2], scores["mse"], rtol=1e-5)
    np.testing.assert_allclose(table["ssim"][2], scores["ssim"], rtol=1e-5)
    gate = next(q for q in model.quantities(0) if sweep.is_gate(q))
    low = result.trace.stat(0, gate, "frac_low")[3:, 0]  # prediction steps t >= pre - 1
    np.testing.assert_allclose(table[f"0/{gate}/frac_low/prediction"][2], low.mean(), rtol=1e-5)


def test_steps_a_module_did_not_run_are_nan_not_zero(tmp_path):
    ckpt = tiny_checkpoint(tmp_path, "mim")
    out = tmp_path / "results.csv"
    assert main(["sweep", str(ckpt), "storms:2", "-o", str(out), "--quiet"]) == 0
    table = sweep.read_table(out)
    assert np.isnan(table["1/N.f/frac_low/t00"]).all()  # MIM-N has no difference at step 0
    assert np.isfinite(table["1/N.f/frac_low/t01"]).all()
    assert np.isfinite(table["1/N.f/frac_low/context"]).all()  # the mean skips the missing step


def test_arrays_with_an_n_axis_and_folders_of_sequences(tmp_path):
    ckpt = tiny_checkpoint(tmp_path)
    rng = np.random.default_rng(0)
    data = rng.random((5, 8, 1, 16, 16), dtype=np.float32)
    array = tmp_path / "test.npy"
    np.save(array, data)
    out = tmp_path / "array.csv"
    assert main(["sweep", str(ckpt), str(array), "-o", str(out), "--batch-size", "2", "--quiet"]) == 0
    table = sweep.read_table(out)
    assert list(table["sequence"]) == [0, 1, 2, 3, 4]
    assert set(table["dataset"]) == {str(array)}
    assert set(table["dataset_bytes"]) == {array.stat().st_size}
    hash_before = table["dataset_hash"][0]
    # a folder of sequence files: one sequence per file, in name order
    folder = tmp_path / "folder"
    folder.mkdir()
    for i in range(3):
        np.save(folder / f"seq{i}.npy", data[i, :, 0])  # (T, H, W)
    out = tmp_path / "folder.csv"
    assert main(["sweep", str(ckpt), str(folder), "-o", str(out), "--quiet"]) == 0
    folder_table = sweep.read_table(out)
    assert len(folder_table["sequence"]) == 3
    np.testing.assert_array_equal(folder_table["mse"], table["mse"][:3])  # same frames, same scores
    # the identity follows the data
    data[0, 0] += 0.5
    np.save(array, data)
    assert sweep.open_dataset(str(array), channels=1, size=(16, 16), length=7).identity["dataset_hash"] != (
        hash_before
    )


def test_parquet_holds_the_same_table_as_csv(tmp_path):
    pytest.importorskip("pyarrow", reason="pyarrow is not installed in this environment")
    ckpt = tiny_checkpoint(tmp_path)
    for suffix in ("csv", "parquet"):
        assert main(["sweep", str(ckpt), "digits:3", "-o", str(tmp_path / f"r.{suffix}"), "--quiet"]) == 0
    csv_table = sweep.read_table(tmp_path / "r.csv")
    parquet_table = sweep.read_table(tmp_path / "r.parquet")
    assert list(csv_table) == list(parquet_table)
    for name in csv_table:
        if csv_table[name].dtype == object:
            assert list(csv_table[name]) == list(parquet_table[name])
        else:
            np.testing.assert_array_equal(csv_table[name], parquet_table[name].astype(np.float64))


def test_bad_input_gets_one_line(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path)
    out = tmp_path / "r.csv"
    assert main(["sweep", str(ckpt), "digits:x", "-o", str(out)]) == 2
    assert "KIND:COUNT" in capsys.readouterr().err
    assert main(["sweep", str(ckpt), str(tmp_path / "missing.npy"), "-o", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err
    short = tmp_path / "short.npy"
    np.save(short, np.zeros((2, 5, 1, 16, 16), np.float32))
    assert main(["sweep", str(ckpt), str(short), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(short) in err and "needs 7" in err
    assert main(["sweep", str(ckpt), "digits:2", "-o", str(tmp_path / "r.txt")]) == 2
    assert ".parquet or .csv" in capsys.readouterr().err


def test_parts_of_another_sweep_are_refused_not_mixed(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path)
    out = tmp_path / "r.csv"
    manifest = sweep.manifest(
        sweep.open_dataset("digits:4", channels=1, size=(16, 16), length=7),
        sweep.checkpoint_identity(ckpt),
        sweep.SweepOptions(batch_size=2),
        4,
        3,
    )
    assert sweep.prepare_parts(out, manifest) is None  # as a killed run leaves it
    assert main(["sweep", str(ckpt), "digits:4", "-o", str(out), "--batch-size", "3"]) == 2
    assert "batch_size" in capsys.readouterr().err
    assert not out.exists()


def _sweep_command(ckpt: Path, out: Path, count: int) -> list[str]:
    return [sys.executable, "-m", "mimviewer", "sweep", str(ckpt), f"storms:{count}", "-o", str(out)]


def test_a_killed_sweep_resumes_and_writes_the_same_file(tmp_path):
    ckpt = tiny_checkpoint(tmp_path)
    count = 120
    whole = tmp_path / "whole.csv"
    subprocess.run(
        [*_sweep_command(ckpt, whole, count), "--batch-size", "2", "--quiet"],
        check=True,
        env=subprocess_env(),
        timeout=300,
    )
    resumed = tmp_path / "resumed.csv"
    command = [*_sweep_command(ckpt, resumed, count), "--batch-size", "2"]
    process = subprocess.Popen(command, env=subprocess_env(), stderr=subprocess.PIPE, text=True)
    line = process.stderr.readline()  # the first progress line: one chunk is written
    assert "sequences" in line, line
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    parts = sorted(sweep.parts_dir(resumed).glob("chunk-*.json"))
    assert not resumed.exists(), "the sweep finished before it could be killed"
    assert 1 <= len(parts) < count // 2
    done = len(parts)
    rerun = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"resuming: {done} chunk(s) already done" in rerun.stderr
    assert resumed.read_bytes() == whole.read_bytes()


def test_torchrun_over_two_processes_writes_the_one_process_file(tmp_path):
    """Two CPU ranks on gloo, chunk c on rank c mod 2; rank 0 gathers and writes."""
    ckpt = tiny_checkpoint(tmp_path)
    single, sharded = tmp_path / "single.csv", tmp_path / "sharded.csv"
    subprocess.run(
        [*_sweep_command(ckpt, single, 5), "--batch-size", "2", "--quiet"],
        check=True,
        env=subprocess_env(),
        timeout=300,
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command = [*torchrun, "-m", "mimviewer", "sweep", str(ckpt), "storms:5", "-o", str(sharded)]
    result = subprocess.run(
        [*command, "--batch-size", "2", "--device", "cpu"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "x 2 ranks" in result.stdout
    assert sharded.read_bytes() == single.read_bytes()


def test_study_reads_a_sweep_table(tmp_path):
    ckpt = tiny_checkpoint(tmp_path)
    out = tmp_path / "mim_test.csv"
    assert main(["sweep", str(ckpt), "digits:4", "-o", str(out), "--quiet"]) == 0
    figures = tmp_path / "figures"
    assert main(["study", str(out), "--out", str(figures)]) == 0

    numbers = json.loads((figures / "saturation.json").read_text())["mim_test"]
    table = sweep.read_table(out)
    expected = np.nanmean(table["1/N.f/frac_low/prediction"]) + np.nanmean(
        table["1/N.f/frac_high/prediction"]
    )
    assert numbers["L1 N.f"]["prediction"] == pytest.approx(expected)
    assert numbers["sequences"]["count"] == 4
    assert (figures / "mim_test_saturation.png").stat().st_size > 1000
    assert (figures / "mim_test_stillness.png").is_file()
    assert "L0 f" in (figures / "saturation_tables.md").read_text()


def test_frames_of_another_size_are_fitted_as_everywhere(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path)
    data = tmp_path / "big.npy"
    np.save(data, np.random.default_rng(1).random((2, 8, 1, 24, 20), dtype=np.float32))
    assert main(["sweep", str(ckpt), str(data), "-o", str(tmp_path / "pad.csv"), "--fit", "pad"]) == 2
    assert "cannot pad 24x20 frames to 16x16" in capsys.readouterr().err
    for fit in ("resize", "crop"):
        out = tmp_path / f"{fit}.csv"
        assert main(["sweep", str(ckpt), str(data), "-o", str(out), "--fit", fit, "--quiet"]) == 0
        assert list(sweep.read_table(out)["sequence"]) == [0, 1]
    resized, cropped = sweep.read_table(tmp_path / "resize.csv"), sweep.read_table(tmp_path / "crop.csv")
    assert not np.array_equal(resized["mse"], cropped["mse"])


def test_cuda_graph_falls_back_with_one_line_where_there_is_no_cuda(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path)
    plain, graphed = tmp_path / "plain.csv", tmp_path / "graphed.csv"
    assert main(["sweep", str(ckpt), "digits:3", "-o", str(plain), "--quiet", "--device", "cpu"]) == 0
    capsys.readouterr()
    args = ["sweep", str(ckpt), "digits:3", "-o", str(graphed), "--quiet", "--device", "cpu", "--cuda-graph"]
    assert main(args) == 0
    note = "mimviewer: cuda graph off: no CUDA device (cpu); running eagerly"
    assert capsys.readouterr().err.strip() == note
    assert graphed.read_bytes() == plain.read_bytes()
