"""The performance paths: data resident on the model's device, the GPU script on the CPU (DDP sharding:
tests/test_reliability.py).

Speed itself is measured by benchmarks/bench.py (ratios side by side), not asserted here."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import ROOT

import torchae
from torchae.cli import main
from torchae.cli.configs import engine_of, fit_quietly
from torchae.data import BatchGroup, MNISTDataModule, TensorBatches
from torchae.optim import KerasAdam
from torchae.registry import EXPERIMENTS


def load_benchmark(name: str):
    """The script ``benchmarks/NAME.py`` as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_trainer(device: str, rank: int = 0, world_size: int = 1) -> SimpleNamespace:
    return SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device(device)), global_rank=rank, world_size=world_size
    )


def test_batches_live_on_the_model_device():
    """The whole split moves to the trainer's device once, and every batch is cut there (``meta`` stands in for
    a GPU: no data is copied per batch)."""
    data = MNISTDataModule(batch_size=32, train_size=96, val_size=64, seed=0)
    data.setup("fit")
    data.trainer = fake_trainer("meta")
    for loader in (data.train_dataloader(), data.val_dataloader()):
        assert loader.images.device.type == "meta"
        batches = list(loader)
        assert all(b.device.type == "meta" for b in batches) and [b.shape[0] for b in batches][0] == 32


def test_steps_per_execution_groups_batches_without_changing_them():
    images = torch.arange(50, dtype=torch.float32).reshape(50, 1, 1, 1)
    plain = TensorBatches(images, 4, shuffle=True, seed=2)
    grouped = TensorBatches(images, 4, shuffle=True, seed=2, steps_per_execution=5)
    groups = list(grouped)
    assert len(grouped) == len(groups) == 3 and all(isinstance(g, BatchGroup) for g in groups)
    flattened = [batch for group in groups for batch in group]
    expected = list(plain)
    assert len(flattened) == len(expected) == 13
    assert all(torch.equal(a, b) for a, b in zip(flattened, expected))


def run_gpu_script(*args: str) -> subprocess.CompletedProcess:
    small = ["--device", "cpu", "--epochs", "2", "--train-size", "512", "--val-size", "128"]
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), *args, *small],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


def test_every_gpu_script_variant_is_an_engine_setting_of_every_experiment():
    """``benchmarks/gpu.py --variants``: each variant's settings build an engine for each experiment (a misspelt
    setting would fail only on the GPU machine, whose time is scarce)."""
    gpu = load_benchmark("gpu")
    for name in EXPERIMENTS:
        for variant, settings in gpu.VARIANTS.items():
            engine = engine_of(name, **settings)
            assert {key: getattr(engine, key) for key in settings} == settings, (name, variant)
    assert gpu.VARIANTS["compiled-steps-graphs"]["compile_mode"] == "reduce-overhead"
    assert engine_of("denoising", **gpu.VARIANTS["compiled-steps-graphs"]).compiled_steps_per_call == 8


@pytest.mark.slow
def test_gpu_script_runs_on_the_cpu_and_its_check_can_fail(monkeypatch, capsys):
    """On the CPU the device step is the CPU step: the script's check finds exactly no difference. With the
    device model's weights perturbed, the same check reports a mismatch and the script exits 1 (that run in this
    process: the script's process is proven by the first)."""
    # the model that draws its noise in the step; `torchae fit` (the script's bench worker): the bench test
    result = run_gpu_script("denoising", "--no-cli")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.count("| 0.0e+00 / 0.0e+00 / 0.0e+00 ok |") == 1, result.stdout[-2000:]
    assert "projected time of the whole article" in result.stdout
    small = ["--device", "cpu", "--epochs", "2", "--train-size", "256", "--val-size", "128"]
    monkeypatch.setattr(sys, "argv", ["benchmarks/gpu.py", "dense", "--no-cli", "--perturb", "1e-3", *small])
    with pytest.raises(SystemExit) as exit_info:
        load_benchmark("gpu").main()
    printed = capsys.readouterr().out
    assert exit_info.value.code == 1, printed[-2000:]
    assert "MISMATCH" in printed and " ok |" not in printed


def test_flat_adam_buffers_are_aligned_and_device_step_sizes_match():
    """Each parameter starts on a 64-byte boundary of the flat buffers (compiled kernels assume alignment), and
    the update with the step size read from a tensor (CUDA graphs) is the eager update."""
    torch.manual_seed(0)
    eager, graphed = torchae.SparseAE(), torchae.SparseAE()
    graphed.load_state_dict(eager.state_dict())
    opt_eager, opt_graphed = eager.configure_optimizers(), graphed.configure_optimizers()
    x = torch.rand(32, 1, 28, 28)
    for _ in range(3):
        for model, opt in ((eager, opt_eager), (graphed, opt_graphed)):
            opt.zero_grad()
            model.loss_terms(x)["loss"].backward()
        opt_eager.step()
        groups = opt_graphed.flat_groups()
        opt_graphed.update_from_device([torch.tensor(-KerasAdam.advance_step(group)) for group, _ in groups])
    assert all(p.data_ptr() % 64 == 0 for p in graphed.parameters())
    assert opt_graphed.state_dict()["param_groups"][0]["step"] == 3
    for p, q in zip(graphed.parameters(), eager.parameters()):
        torch.testing.assert_close(p, q, atol=1e-7, rtol=1e-6)


def test_the_quiet_run_writes_no_file(tmp_path, monkeypatch):
    """The benchmarks' and parity suite's training run keeps its history in memory and leaves the folder alone."""
    monkeypatch.chdir(tmp_path)
    history, seconds = fit_quietly(torchae.DenseAE(), "dense", 2, train_size=256, val_size=128)
    assert [row["epoch"] for row in history] == [0, 1] and len(seconds) == 2
    assert list(tmp_path.iterdir()) == []


def test_the_benchmark_times_the_mnist_experiments_and_refuses_the_points_models(monkeypatch, capsys):
    """Part 2's points models train in seconds to minutes and have no Keras worker on MNIST: by default the benchmark
    times every MNIST autoencoder (the registry's), and a points model is one line."""
    bench = load_benchmark("bench")
    assert "deep_sparse" in bench.MNIST_EXPERIMENTS and "vae" in bench.MNIST_EXPERIMENTS
    assert not any(name.startswith("dots_") or name in ("gan", "judge") for name in bench.MNIST_EXPERIMENTS)
    monkeypatch.setattr(sys, "argv", ["benchmarks/bench.py", "dots_deep"])
    with pytest.raises(SystemExit) as exit_info:
        bench.main()
    assert exit_info.value.code == 2 and "'dots_deep' is not timed here: choose from dense" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parity
def test_benchmark_times_keras_and_torchae_side_by_side_and_writes_its_table(tmp_path, monkeypatch, capsys):
    """``benchmarks/bench.py`` on a tiny subset: Keras runs in a process of its own, and the results file holds the
    command, the machine and one row with the ratio verdicts and the floor. The script runs in this process, and so
    do its torch loop, its floor and the ``torchae fit`` command it writes (torch is loaded here already; Keras's
    worker process proves the worker processes); Keras on its torch backend, which loads faster than TensorFlow."""
    out = tmp_path / "RESULTS.md"
    tiny = ["--epochs", "2", "--repeats", "1", "--train-size", "4096", "--val-size", "1024"]  # epochs of 0.05 s
    monkeypatch.setattr(sys, "argv", ["benchmarks/bench.py", "dense", "--backends", "torch", *tiny, "--out", str(out)])
    bench = load_benchmark("bench")
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    in_processes, run = bench.run_worker, subprocess.run

    def run_worker(kind, name, epochs, train_size, val_size, root=bench.ROOT):
        if kind in ("torch", "floor"):
            return bench.WORKERS[kind](name, epochs, train_size, val_size)
        return in_processes(kind, name, epochs, train_size, val_size, root)

    def run_command(command, cwd=None, **options):  # `torchae fit`, as the worker writes it, run in this process
        if command[1:3] != ["-m", "torchae"]:
            return run(command, cwd=cwd, **options)
        monkeypatch.chdir(cwd)
        main([*command[3:], "--engine.compiled_steps=false"])  # the test times the script, not inductor
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(bench, "run_worker", run_worker)
    monkeypatch.setattr(bench.subprocess, "run", run_command)
    bench.main()  # a failed measurement raises CalledProcessError
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    assert "Command: `python benchmarks/bench.py dense --backends torch" in text and "Still running" not in text
    # the machine with its widest vector instructions, which decide the kernels MKL, oneDNN and XLA run, and its
    # family and model numbers: the name alone ("AMD EPYC") was the same for three generations
    machine_line = r"Machine: .+ \((AVX-512|AVX2|no AVX2), family \d+ model \d+\), \d+ cores, \d+ GiB\."
    assert re.search(machine_line, text), text[:400]
    rows = [line for line in text.splitlines() if line.startswith("| dense |")]
    assert len(rows) == 1 and "4,096 / 1,024" in rows[0]
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    keras, loop, fit = (float(cells[i]) for i in (3, 4, 5))
    assert keras > 0 and loop > 0 and fit > 0
    ratio, verdict = re.fullmatch(r"\*\*([0-9.]+)\*\* \((met|MISSED) 0.5\)", cells[6]).groups()
    if abs(float(ratio) - 0.5) > 0.005:  # the verdict is the unrounded ratio's: "0.50" can be either
        assert verdict == ("met" if float(ratio) <= 0.5 else "MISSED")
    floor, floor_ratio = float(cells[9]), float(re.fullmatch(r"\*\*([0-9.]+)\*\*", cells[10]).group(1))  # no target
    assert (
        floor > 0 and (fit - 0.005) / (floor + 0.005) - 0.005 <= floor_ratio <= (fit + 0.005) / (floor - 0.005) + 0.005
    )
    # the table's seconds are rounded to 0.01 and the ratio to 0.01: it lies between the bounds the cells allow
    assert (fit - 0.005) / (keras + 0.005) - 0.005 <= float(ratio) <= (fit + 0.005) / (keras - 0.005) + 0.005


@pytest.mark.slow
def test_the_article_script_runs_torchae_fit_and_records_the_run(tmp_path, capsys):
    """``benchmarks/article.py`` on a tiny subset runs the real ``torchae fit`` (a process of its own; the script
    runs in this one) and records its losses and times; an output folder with runs in it is refused (nothing written
    is overwritten)."""
    tiny = ["--epochs", "1", "--train-size", "256", "--val-size", "128"]
    tiny += ["--set", "engine.compiled_steps=false", "figures.enabled=false"]
    out = tmp_path / "article"
    article = load_benchmark("article")
    assert article.main(["dense", "--out", str(out), *tiny]) == 0
    printed = capsys.readouterr().out
    dense = json.loads((out / "article.json").read_text())["models"]["dense"]
    assert dense["status"] == "finished" and 0 < dense["val_loss"] < 0.7 and dense["seconds"] > 0
    assert dense["command"][-2:] == ["--figures.enabled", "false"] and (out / "dense" / "version_0").is_dir()
    assert "| dense | 0.0 | " in printed and "The whole article (torchae fit): " in printed
    for arguments, message in [
        (["--out", str(out)], "is not empty: give a new --out folder"),
        (
            ["--out", str(tmp_path / "new"), "--keras", "jax", "--set", "engine.cuda_graphs=true"],
            "--set sets torchae fit's options: leave it out with --keras",
        ),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            article.main(arguments)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_the_article_scripts_keras_peer_runs_the_benchmark_worker_and_reads_its_result(tmp_path):
    """``--keras BACKEND``: each model runs ``bench.py``'s Keras worker (tested through ``bench.py`` itself) at the
    article's epochs or the given ones, and its last JSON line gives the losses; a log without one gives none."""
    article = load_benchmark("article")
    args = SimpleNamespace(keras="jax", epochs=None, train_size=512, val_size=None)
    command = article.keras_command("sparse", args)
    assert command[1:] == [
        str(ROOT / "benchmarks" / "bench.py"),
        "--worker",
        "keras-jax",
        "sparse",
        "--epochs",
        "400",
        "--train-size",
        "512",
    ]
    assert article.keras_command("conv", SimpleNamespace(**{**vars(args), "epochs": 2}))[6] == "2"
    log = tmp_path / "sparse.log"
    log.write_text('Epoch 1/400\n{"seconds": [1.0], "peak_mb": 1.0, "loss": 0.3, "val_loss": 0.25}\n')
    assert article.keras_losses(log) == (0.3, 0.25)
    log.write_text("Traceback (most recent call last):\nMemoryError\n")
    assert article.keras_losses(log) is None


def test_the_article_script_retrains_dense_after_it_and_reports_failures(tmp_path, monkeypatch):
    """Denoising starts when dense has finished, from dense's last checkpoint; a model that fails is reported in
    its row while the others run, and what retrains it is not started (runs stand in for torchae fit)."""
    article = load_benchmark("article")

    def stand_in(name, out, args, init_from=None):  # writes what a finished fit writes, or fails as a bad setting
        fails = "data.batch_size=0" in args.set and name == "dense"
        code = (
            "import pathlib, sys, time; time.sleep(0.5); "
            f"run = pathlib.Path({str(out / name)!r}) / 'version_0'; (run / 'checkpoints').mkdir(parents=True); "
            "(run / 'checkpoints' / 'last.ckpt').write_text(''); "
            "(run / 'metrics.csv').write_text('epoch,train_loss,val_loss\\n0,,0.25\\n0,0.3,\\n'); "
            + ("sys.exit('torchae: error: batch_size must be positive')" if fails else "")
        )
        return [sys.executable, "-c", code] + (["--model.init_from", str(init_from)] if init_from else [])

    monkeypatch.setattr(article, "fit_command", stand_in)
    settings = {"epochs": 1, "train_size": None, "val_size": None, "keras": None}
    record = article.run_article(
        SimpleNamespace(out=tmp_path / "a", models=("dense", "denoising", "sparse"), set=[], **settings)
    )
    dense, denoising, sparse = (record["models"][name] for name in ("dense", "denoising", "sparse"))
    assert dense["status"] == denoising["status"] == sparse["status"] == "finished"
    assert sparse["started_s"] < dense["ended_s"] <= denoising["started_s"]  # side by side, but after dense
    assert denoising["command"][-1] == str(tmp_path / "a" / "dense" / "version_0" / "checkpoints" / "last.ckpt")
    assert (dense["loss"], dense["val_loss"]) == (0.3, 0.25)
    failing = article.run_article(
        SimpleNamespace(
            out=tmp_path / "b", models=("dense", "denoising", "sparse"), set=["data.batch_size=0"], **settings
        )
    )["models"]
    assert failing["dense"]["status"] == "failed (exit 1): torchae: error: batch_size must be positive"
    assert failing["denoising"]["status"] == "not started: dense did not finish"
    assert failing["sparse"]["status"] == "finished"
    assert "| denoising | — | — | — | — | not started: dense did not finish |" in article.table(
        {"wall_s": 1.0, "machine": "m", "framework": "torchae fit", "models": failing}
    )


def test_the_floor_times_convolutions_in_the_faster_layout(monkeypatch):
    """A step's convolutions replay channels-last or contiguous, and the floor takes the faster (the engine may run
    either); a step of matrix products alone is timed once, as it is."""
    floor = load_benchmark("floor")
    products = floor.recorded_products("conv", 2, training=True)
    assert {"aten::convolution", "aten::convolution_backward"} <= {op for op, _, _ in products}
    convolution = next(product for product in products if product[0] == "aten::convolution" and product[1][1][1] > 1)
    for channels_last in (False, True):
        output = floor.replay(convolution, channels_last)()
        assert output.is_contiguous(memory_format=torch.channels_last) == channels_last
    timed = []

    def step_seconds(products, repeats=7, channels_last=False):
        timed.append(channels_last)
        return 1.0 if channels_last else 2.0

    monkeypatch.setattr(floor, "step_seconds", step_seconds)
    assert floor.least_step_seconds(products) == 1.0 and timed == [False, True]
    timed.clear()
    assert floor.least_step_seconds(floor.recorded_products("dense", 2, training=True)) == 2.0 and timed == [False]


def test_the_benchmark_runs_beside_busy_processes_and_stops_them():
    """``bench.py --busy N``: N processes keep a core busy each while the measurements run, and end with them."""
    import time

    bench = load_benchmark("bench")
    with bench.busy_processes(2) as loops:
        time.sleep(0.5)
        assert all(loop.poll() is None for loop in loops)
        ticks = [int(Path(f"/proc/{loop.pid}/stat").read_text().rsplit(")", 1)[1].split()[11]) for loop in loops]
        assert all(tick > 0 for tick in ticks)  # user time: they compute
    assert all(loop.poll() is not None for loop in loops)


@pytest.mark.parity
def test_the_gan_benchmark_times_both_loops_per_batch_and_judges_the_ratio(monkeypatch):
    """``benchmarks/gans.py``: the Keras worker runs part 6's loop (both sides' steps where the discriminator hands its
    batch on) and validates; ``torchae fit``'s epochs become seconds per batch; a row states the verdict."""
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    gans = load_benchmark("gans")
    result = gans.worker_keras("cvae_gan", batches=2, epochs=2, val_size=64)
    assert len(result["seconds"]) == 2 and 2 <= result["steps"] <= 2 * 2 * 2 and result["val_loss"] > 0
    assert gans.per_batch({"seconds": [9.0, 4.0, 6.0]}, batches=2) == 2.5  # the median after the warm-up, per batch
    row = gans.row("cvae_gan", 2, keras=[1.0, 1.2], torchae=[0.4, 0.7])
    assert row == "| cvae_gan | 64 | 2 | 1.100 | 0.550 | **0.49** (met) | 0.40, 0.58 |"  # the median round's ratio
    assert "**0.60** (MISSED)" in gans.row("gan", 2, keras=[1.0], torchae=[0.6])
