"""The rollout benchmark runs, and against OpenSTL it gives identical outputs (when a checkout is here)."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_rollout.py"
OPENSTL = Path("/tmp/openstl")


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_rollout", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_rollout"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _forget_openstl_stubs():
    """The benchmark serves OpenSTL's imports from stub packages; leave sys.modules as found."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name == "openstl" or name.startswith("openstl.") or name == "bench_rollout":
            del sys.modules[name]


def table_rows(output: str) -> list[list[str]]:
    lines = [line for line in output.splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def test_without_openstl_the_benchmark_times_ours_only(capsys, tmp_path):
    bench = load_bench()
    argv = ["--models", "convlstm", "sru", "--configs", "small", "--warmup", "0", "--repeats", "1"]
    assert bench.main([*argv, "--openstl", str(tmp_path / "absent")]) == 0
    output = capsys.readouterr().out
    assert "OpenSTL source not found" in output
    rows = table_rows(output)
    assert [row[0] for row in rows] == ["convlstm", "sru"]
    for row in rows:
        assert float(row[2]) > 0 and float(row[5]) > 0  # ours, ours + probes
        assert row[3] == "n/a" and row[7] == "n/a"  # no reference, no difference


@pytest.mark.skipif(not OPENSTL.is_dir(), reason="needs an OpenSTL source checkout at /tmp/openstl")
def test_with_openstl_outputs_are_identical_to_the_reference(capsys):
    bench = load_bench()
    argv = ["--models", "convlstm", "predrnn", "--configs", "small", "--warmup", "0", "--repeats", "1"]
    assert bench.main([*argv, "--openstl", str(OPENSTL)]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert [row[0] for row in rows] == ["convlstm", "predrnn"]
    for row in rows:
        assert float(row[3]) > 0
        assert float(row[7]) == 0.0  # max |ours - OpenSTL| over the predicted frames
