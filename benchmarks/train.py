"""Training speed: the code before the speed work (issue 27) against the code of this checkout.

``compare`` (the default) runs, each in a fresh process, training steps (forward, backward,
Adam) of the default model on the default graph and audio stores, with each version's own
process settings (the old stages had none; the new ones call ``pipeline.runtime``), at batch
sizes 8 (the default) and 16 (the default before), on 1 and 2 torch threads. It prints per step
the median wall time and process CPU time of each version, their ratio, the FLOPs (forward and
backward convolutions and matrix products, ``torch.utils.flop_counter``) and the GFLOP/s
attained; the loss of every timed step of both versions, which see the same batches from the
same initial weights (the same mathematics, summed in another order); and the seconds of one
validation (the old one, the new one's first and its later calls).

``presets`` prints the steps per second and peak memory of each size preset, and the data
loader's pace alone with 0 and 1 worker processes.

Usage: ``uv run python benchmarks/train.py [compare|presets] [--old REV]`` after ``dvc repro audio
graphs``; the figures go to docs/model.md ("Speed").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AUDIO = "data/audio/audio.h5"
# the graph store; the old code reads it through a copy stamped with the schema it knows (the
# layout is the same: schema 2 added the ``features`` attribute, which the old code ignores)
GRAPHS = os.environ.get("BENCH_GRAPHS", "data/graphs/graphs.h5")
REPO = Path(__file__).resolve().parents[1]
OLD = "7349127"  # main before the speed work of issue 27
# what a shell may hold that changes how torch's threads wait: neither version gets it
WAIT_ENV = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "PIPELINE_TUNE")


def _model_and_batches(batch: int, n: int, window: int = 32767, preset: str = "small"):
    import torch

    from pipeline.graphs.store import GraphStore
    from pipeline.separation.audio_store import AudioStore
    from pipeline.separation.data import MixtureDataset, collate
    from pipeline.separation.model import build_separator
    from pipeline.separation.spectrogram import SpecConfig

    try:
        from pipeline.separation.model import ModelParams, model_config

        params = ModelParams.of("avsgs", preset)
    except ImportError:  # the code before issue 28
        from pipeline.separation.train import ModelParams, model_config

        params = ModelParams("avsgs", preset, True, True, True, True)
    graphs, audio = GraphStore(GRAPHS), AudioStore(AUDIO)
    cfg = SpecConfig(samples=window)
    data = MixtureDataset(graphs, audio, graphs.ids("train"), cfg.samples, (0, 0), batch * n)
    n_classes = len(graphs.label_names) + 1
    config = model_config(params, "reference", graphs.attrs["feature_dim"], n_classes, 2)
    torch.manual_seed(0)
    model = build_separator("avsgs", config)
    batches = [collate([data[k] for k in range(i * batch, (i + 1) * batch)]) for i in range(n)]
    return model, batches, cfg, graphs, audio


def measure(batch: int, n: int, threads: int) -> dict:
    """One version's steps, in this process (its ``PYTHONPATH`` picks the version)."""
    try:  # the new stages tune their process before torch loads; the old had no such module
        from pipeline import runtime

        tuned = runtime.tune_process(reexec=True)
    except ImportError:
        tuned = {}
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from pipeline.separation.step import RECIPES, compute_losses

    torch.set_num_threads(threads)
    model, batches, cfg, _, _ = _model_and_batches(batch, n + 1)
    groups = model.param_groups()
    optimizer = torch.optim.Adam([{"params": groups[k]} for k in groups], lr=3e-3)

    def step(b):
        out = compute_losses(model, b, RECIPES["reference"], cfg)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        return float(out["loss"].detach())

    with FlopCounterMode(display=False) as flops:
        losses = [step(batches[0])]  # also the warm-up
    wall, cpu = [], []
    for b in batches[1:]:
        w0, c0 = time.perf_counter(), time.process_time()
        losses.append(step(b))
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {
        "tuned": tuned,
        "wall_ms": 1000 * statistics.median(wall),
        "cpu_ms": 1000 * statistics.median(cpu),
        "gflop": flops.get_total_flops() / 1e9,
        "losses": losses,
    }


def measure_validation(mixtures: int = 16) -> dict:
    """Seconds of one validation of the default size, old (``validate``) or new
    (``Validation``: the first call, which also scores the mixtures, and a later one)."""
    import torch

    try:  # where Validation lives since issue 28
        import pipeline.separation.validation as tr
    except ImportError:
        import pipeline.separation.train as tr
    from pipeline.separation.data import validation_pairs
    from pipeline.separation.step import RECIPES

    torch.set_num_threads(2)
    model, _, cfg, graphs, audio = _model_and_batches(8, 0)
    pairs = validation_pairs(graphs, audio, graphs.ids("val"), mixtures, cfg.samples, 0)
    recipe, cpu = RECIPES["reference"], torch.device("cpu")
    out = {}
    if hasattr(tr, "Validation"):
        validation = tr.Validation(graphs, audio, pairs, recipe, cfg, 8)
        for name in ("first_s", "later_s"):
            t0 = time.perf_counter()
            validation(model, cpu)
            out[name] = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        tr.validate(model, graphs, audio, pairs, recipe, cfg, 8, cpu)
        out["each_s"] = time.perf_counter() - t0
    return out


def _child(root: Path, *args: str, graphs: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in WAIT_ENV}
    env["PYTHONPATH"] = str(root)
    if graphs is not None:
        env["BENCH_GRAPHS"] = str(graphs)
    res = subprocess.run(
        [sys.executable, "-W", "ignore", __file__, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    if res.returncode:
        sys.exit(f"{' '.join(args)} in {root} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def rate(r: dict) -> float:
    """GFLOP/s attained (wall time)."""
    return r["gflop"] / r["wall_ms"] * 1e3


def _as_schema_1(store: Path, copy: Path) -> Path:
    import shutil

    import h5py

    shutil.copyfile(store, copy)
    with h5py.File(copy, "r+") as f:
        f.attrs["schema_version"] = 1
    return copy


def compare(old: str, batches: list[int], threads: list[int], steps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "archive", old, "pipeline"], cwd=REPO, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        roots = {"old": Path(tmp), "new": REPO}
        stores = {"old": _as_schema_1(Path(GRAPHS), Path(tmp) / "graphs.h5"), "new": None}
        print(f"old: {old} (git archive); new: this checkout; {steps} timed steps each")
        print(
            "batch threads | old ms/step (cpu) | new ms/step (cpu) | wall ratio (cpu) "
            "| GFLOP/step old new | GFLOP/s old new | loss: first step, last step (rel. diff)"
        )
        for batch in batches:
            for n_threads in threads:
                r = {
                    v: _child(
                        root, "_steps", str(batch), str(steps), str(n_threads), graphs=stores[v]
                    )
                    for v, root in roots.items()
                }
                o, n = r["old"], r["new"]
                rel = [abs(a - b) / abs(a) for a, b in zip(o["losses"], n["losses"], strict=True)]
                print(
                    f"{batch:5d} {n_threads:7d} | {o['wall_ms']:7.0f} ({o['cpu_ms']:5.0f}) "
                    f"| {n['wall_ms']:7.0f} ({n['cpu_ms']:5.0f}) "
                    f"| {o['wall_ms'] / n['wall_ms']:5.2f}x ({o['cpu_ms'] / n['cpu_ms']:4.2f}x) "
                    f"| {o['gflop']:5.2f} {n['gflop']:5.2f} "
                    f"| {rate(o):5.1f} {rate(n):5.1f} "
                    f"| {rel[0]:.1e}, {rel[-1]:.1e}"
                )
        print(f"new process settings: {n['tuned'] or 'none'}")
        vo = _child(roots["old"], "_validation", graphs=stores["old"])
        vn = _child(roots["new"], "_validation")
        print(
            f"one validation (16 mixtures, 2 threads): old {vo['each_s']:.1f} s; new "
            f"{vn['first_s']:.1f} s the first, {vn['later_s']:.1f} s each later one"
        )


def preset_steps(preset: str, batch: int = 4, n: int = 4) -> dict:
    import torch

    from pipeline.separation.step import RECIPES, compute_losses

    torch.set_num_threads(2)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, batches, cfg, _, _ = _model_and_batches(batch, n + 1, 65535, preset)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(b):
        b = {**b, **{k: b[k].to(device) for k in ("wav", "graphs", "mixture")}}
        out = compute_losses(model, b, RECIPES["reference"], cfg)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()

    step(batches[0])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in batches[1:]:
        step(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    out = {
        "preset": preset,
        "device": device.type,
        "batch": batch,
        "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "steps_per_s": round(n / (time.perf_counter() - t0), 3),
        "peak_rss_GiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    if device.type == "cuda":
        out["peak_gpu_GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def loader(workers: int, n: int = 400, batch: int = 4) -> dict:
    import torch

    from pipeline.graphs.store import GraphStore
    from pipeline.separation.audio_store import AudioStore
    from pipeline.separation.data import MixtureDataset, collate
    from pipeline.separation.spectrogram import SpecConfig

    graphs, audio = GraphStore(GRAPHS), AudioStore(AUDIO)
    data = MixtureDataset(graphs, audio, graphs.ids("train"), SpecConfig().samples, (0, 0), n)
    dl = torch.utils.data.DataLoader(
        data, batch_size=batch, collate_fn=collate, num_workers=workers
    )
    it = iter(dl)
    next(it)  # start-up (worker spawn, torch_geometric import) is not the pace
    t0 = time.perf_counter()
    count = sum(len(b["clip_ids"]) for b in it)
    return {"workers": workers, "mixtures_per_s": round(count / (time.perf_counter() - t0), 1)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):  # one measurement in this process
        kind, args = sys.argv[1], [int(a) for a in sys.argv[2:]]
        run = {
            "_steps": lambda: measure(*args),
            "_validation": measure_validation,
            "_preset": lambda: preset_steps({0: "small", 1: "paper"}[args[0]]),
            "_loader": lambda: loader(*args),
        }[kind]
        print(json.dumps(run()))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="compare", choices=["compare", "presets"])
    parser.add_argument("--old", default=OLD, help="the revision to compare against")
    parser.add_argument("--batch", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    args = parser.parse_args()
    if args.mode == "compare":
        compare(args.old, args.batch, args.threads, args.steps)
    else:
        for kind, arg in [("_preset", "0"), ("_preset", "1"), ("_loader", "0"), ("_loader", "1")]:
            print(json.dumps(_child(REPO, kind, arg)))


if __name__ == "__main__":
    main()
