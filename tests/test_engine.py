"""GPU-ready engine, checked on the CPU: static buffers, E3D-LSTM's recall buffer, speed switches,
the CUDA-graph fallback, the memory budget and the size of a reduced trace."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mimviewer import accel
from mimviewer.checkpoints import save_checkpoint
from mimviewer.cli import main
from mimviewer.inference import rollout
from mimviewer.memory import MemoryBudgetError, estimate, upper_bound
from mimviewer.nets import create_model, list_models
from mimviewer.nets.base import patchify
from mimviewer.trace import NO_PROBE, ProbeSpec, TraceRecorder

TINY = dict(num_hidden=(6, 6), patch_size=2, height=16, width=16, filter_size=3, pre=3, aft=3)


@pytest.mark.parametrize("arch", list_models())
def test_the_output_buffer_gives_the_bits_of_stacked_steps(arch):
    model = create_model(arch, **TINY).eval()
    frames = torch.rand(2, 3, 1, 16, 16)
    with torch.inference_mode():
        stacked = model(frames, 3, 3)  # torch.stack of every step's output
    np.testing.assert_array_equal(rollout(model, frames, 3, 3).outputs, stacked.numpy())


E3D_CONFIGS = [
    dict(options=dict(window_length=2, window_stride=1, temporal_filter_size=2), layer_norm=False),
    dict(options=dict(window_length=3, window_stride=2, temporal_filter_size=2), layer_norm=True),
    dict(options=dict(window_length=3, window_stride=1, temporal_filter_size=3), layer_norm=False),
    dict(options=dict(window_length=4, window_stride=1, temporal_filter_size=2), layer_norm=True),
]


@pytest.mark.parametrize("options", E3D_CONFIGS, ids=lambda o: str(o["options"]))
@pytest.mark.parametrize(("batch", "pre", "aft"), [(1, 3, 3), (3, 4, 6)])
def test_e3d_recall_buffer_gives_the_bits_of_concatenated_keys(options, batch, pre, aft):
    """Inference writes recall keys into one buffer; with autograd on they are concatenated
    (the code before the buffer). (3, 4, 6) runs longer than the config: the buffer grows."""
    torch.manual_seed(3)
    model = create_model("e3d_lstm", **{**TINY, "num_hidden": (5, 7)}, **options).eval()
    frames = torch.rand(batch, pre, 1, 16, 16)
    with torch.enable_grad():
        concatenated = model(frames, pre, aft).detach()
    with torch.no_grad():
        buffered = model(frames, pre, aft)
    assert torch.equal(buffered, concatenated)


def test_e3d_writes_its_recall_keys_in_place_at_inference():
    """One buffer per layer, sized for the configured 5 steps; stepped further by hand it grows
    once (doubling) and the keys stay the concatenation of every past C, bit for bit."""
    model = create_model("e3d_lstm", **TINY).eval()
    xs = patchify(torch.rand(2, 8, 1, 16, 16), 2)

    def run(grad: bool) -> tuple[list[torch.Tensor], list[list[int]]]:
        outputs, storage = [], []
        with torch.set_grad_enabled(grad):
            state = model.init_state(2, xs)
            for t in range(8):
                y, state = model.step(xs[:, t], state, NO_PROBE)
                outputs.append(y.detach())
                if not grad:
                    storage.append([buffer.data_ptr() for buffer in state.buffers])
                    for keys, buffer in zip(state.history, state.buffers, strict=True):
                        assert keys.data_ptr() == buffer.data_ptr()  # the keys are a view of the buffer
                        assert keys.shape[1] == (t + 1) * model.window_length * 8 * 8
                else:
                    assert state.buffers == [None, None]  # training: concatenated, nothing in place
        return outputs, storage

    buffered, storage = run(grad=False)
    assert all(ptrs == storage[0] for ptrs in storage[:5])  # one buffer for the configured rollout
    assert all(ptrs == storage[5] for ptrs in storage[5:]) and storage[5] != storage[0]  # grown once
    concatenated, _ = run(grad=True)
    for a, b in zip(buffered, concatenated, strict=True):
        assert torch.equal(a, b)


def test_cuda_graph_falls_back_with_one_line_where_there_is_no_cuda(tmp_path, capsys):
    model = create_model("mim", **TINY)
    frames = torch.rand(1, 3, 1, 16, 16)
    eager = rollout(model, frames, 3, 3, probes=ProbeSpec())
    result = rollout(model, frames, 3, 3, probes=ProbeSpec(), cuda_graph=True, device="cpu")
    assert result.notes == ["cuda graph off: no CUDA device (cpu); running eagerly"]
    np.testing.assert_array_equal(result.outputs, eager.outputs)
    assert eager.notes == []
    ckpt, data = tmp_path / "m.safetensors", tmp_path / "x.npy"
    save_checkpoint(ckpt, model)
    np.save(data, frames.numpy())
    args = ["predict", str(ckpt), str(data), "-o", str(tmp_path / "y.npy"), "--device", "cpu"]
    assert main([*args, "--cuda-graph", "--tf32"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "mimviewer: tf32 has no effect on cpu: it is a CUDA (Ampere and later) feature",
        "mimviewer: cuda graph off: no CUDA device (cpu); running eagerly",
    ]
    assert not torch.backends.cuda.matmul.allow_tf32  # nothing changed where it has no effect


def test_fast_mode_says_why_it_is_off(monkeypatch, tmp_path, capsys):
    model = create_model("convlstm", **TINY)
    ckpt, data = tmp_path / "m.safetensors", tmp_path / "x.npy"
    save_checkpoint(ckpt, model)
    np.save(data, np.random.default_rng(0).random((1, 3, 1, 16, 16), dtype=np.float32))
    args = ["predict", str(ckpt), str(data), "-o", str(tmp_path / "y.npy"), "--device", "cpu", "--fast"]
    monkeypatch.setattr(accel, "bf16_supported", lambda device: False)
    assert main(args) == 0
    assert capsys.readouterr().err.strip() == (
        "mimviewer: fast mode off: cpu has no native bf16 "
        "(needs a bf16 GPU or an AVX512-BF16/AMX CPU); float32"
    )
    plain = np.load(tmp_path / "y.npy")
    np.testing.assert_array_equal(plain, rollout(model, np.load(data), 3, 3).prediction)


def test_fast_mode_runs_bf16_where_the_cpu_has_it(tmp_path, capsys):
    if not accel.bf16_supported(torch.device("cpu")):
        pytest.skip("this CPU has no native bf16 (AVX512-BF16/AMX)")
    model = create_model("mim", **TINY)
    frames = torch.rand(2, 3, 1, 16, 16)
    exact = rollout(model, frames, 3, 3, probes=ProbeSpec())
    fast = rollout(model, frames, 3, 3, probes=ProbeSpec(), amp=True)
    error = np.abs(fast.outputs - exact.outputs).max()
    # bf16 keeps 8 bits of mantissa: relative 2^-8 per rounding, a few roundings per step
    assert 0 < error < 0.05
    assert set(fast.trace.stats) == set(exact.trace.stats)


@pytest.mark.parametrize("arch", list_models())
def test_the_memory_estimate_is_what_a_rollout_keeps(arch):
    model = create_model(arch, **TINY)
    spec = ProbeSpec(keep_raw=True)
    sizes = estimate(model, spec, 2, 3, 3)
    trace = rollout(model, torch.rand(2, 3, 1, 16, 16), 3, 3, probes=spec).trace
    assert sizes.raw == sum(v.nbytes for v in trace.raw.values())
    assert sizes.reduced == sum(trace.maps[k].nbytes + trace.stats[k].nbytes for k in trace.maps)
    assert sizes.state > 0
    assert upper_bound(model, spec, 2, 3, 3) >= sizes.raw_and_state  # the no-run bound is a bound


def test_kept_raw_tensors_over_budget_stop_before_the_first_step():
    model = create_model("mim", **TINY)
    spec = ProbeSpec(keep_raw=True)
    sizes = estimate(model, spec, 1, 3, 3)
    frames = torch.rand(1, 3, 1, 16, 16)
    rollout(model, frames, 3, 3, probes=spec, raw_budget=sizes.raw_and_state)  # exactly enough
    with pytest.raises(MemoryBudgetError, match=r"MiB budget: record fewer quantities") as error:
        rollout(model, frames, 3, 3, probes=spec, raw_budget=sizes.raw_and_state - 1)
    assert len(str(error.value).splitlines()) == 1
    rollout(model, frames, 3, 3, probes=ProbeSpec(), raw_budget=1)  # reductions only: no budget needed


def test_the_budget_counts_e3d_recall_history():
    """E3D-LSTM's recall keys (every past C of every layer) grow with the steps: they count."""
    model = create_model("e3d_lstm", **TINY)
    spec = ProbeSpec(keep_raw=True)
    sizes = estimate(model, spec, 1, 3, 3)
    window = model.history_capacity(5) * sum(model.config.num_hidden) * 4
    assert sizes.state >= window
    with pytest.raises(MemoryBudgetError, match="E3D-LSTM's recall history"):
        rollout(model, torch.rand(1, 3, 1, 16, 16), 3, 3, probes=spec, raw_budget=sizes.raw + window // 2)


def test_reduced_trace_of_a_20_step_4x128_mim_stays_under_10_mb():
    """Issue target: MIM 4x128, filter 5, patch 4, 64x64, 20 steps, every probe: the reduced trace
    (maps + stats, what the GUI and exports hold) per sequence, measured on a real rollout."""
    model = create_model(
        "mim", num_hidden=(128,) * 4, filter_size=5, patch_size=4, height=64, width=64, pre=10, aft=11
    )
    result = rollout(model, torch.rand(1, 10, 1, 64, 64), 10, 11, probes=ProbeSpec())
    trace = result.trace
    assert trace.steps == 20 and trace.raw == {}
    size = sum(trace.maps[k].nbytes + trace.stats[k].nbytes for k in trace.maps)
    quantities = sum(len(model.quantities(layer)) + 1 for layer in range(4))  # + dH
    assert len(trace.maps) == quantities
    assert size == estimate(model, ProbeSpec(), 1, 10, 11).reduced
    assert size < 10e6, f"reduced trace is {size / 1e6:.2f} MB"


HOST_SYNCS = frozenset(
    {"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "cpu"}
    | {"nonzero", "unique", "masked_select", "__format__", "__repr__"}
)


class _HostSyncSpy(torch.overrides.TorchFunctionMode):
    """Notes every tensor call that reads values on the host or makes a data-dependent shape:
    on a GPU each one waits for the device, and none may happen inside a CUDA graph capture."""

    def __init__(self):
        super().__init__()
        self.seen: list[str] = []
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        name = getattr(func, "__name__", str(func))
        if name in HOST_SYNCS:
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("arch", list_models())
def test_the_step_loop_with_every_probe_never_waits_for_the_device(arch):
    """What lets a whole rollout with probes be captured as one CUDA graph, checked on the CPU:
    no host synchronisation or data-dependent shape in any step of any architecture."""
    model = create_model(arch, **TINY).eval()
    frames = torch.rand(2, 3, 1, 16, 16)
    recorder = TraceRecorder(ProbeSpec(), 5)
    with torch.inference_mode(), _HostSyncSpy() as spy:
        outputs = list(model.generate(frames, 3, 3, probe=recorder))
    assert spy.seen == [] and spy.calls > 100  # the spy saw the rollout, and no host sync in it
    with _HostSyncSpy() as spy:
        torch.ones(2).sum().item()  # the spy does see one
    assert spy.seen == ["item"]
    assert {tuple(y.shape) for y in outputs} == {(2, 1, 16, 16)}  # one shape for every step
