"""Training speed and memory of the separator presets, and the data loader's pace.

For each preset (``small``, ``paper``) in a fresh process: training steps per second (forward,
backward, Adam) at the default batch of 4 mixtures on the default graph and audio stores, and the
process's peak memory (RSS; on a GPU also the peak allocated). Then the data loader alone:
mixtures per second with 0 and 1 worker processes, which must outpace the model.

Usage: ``uv run python benchmarks/train.py`` after ``dvc repro audio graphs``; figures go to
docs/model.md.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

GRAPHS, AUDIO = "data/graphs/graphs.h5", "data/audio/audio.h5"


def steps(preset: str, batch: int = 4, n: int = 4) -> dict:
    import torch

    from pipeline.graphs.store import GraphStore
    from pipeline.separation.audio_store import AudioStore
    from pipeline.separation.data import MixtureDataset, collate
    from pipeline.separation.model import build_separator
    from pipeline.separation.spectrogram import SpecConfig
    from pipeline.separation.step import RECIPES, compute_losses
    from pipeline.separation.train import ModelParams, model_config

    torch.set_num_threads(2)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    graphs, audio = GraphStore(GRAPHS), AudioStore(AUDIO)
    cfg = SpecConfig()
    data = MixtureDataset(graphs, audio, graphs.ids("train"), cfg.samples, (0, 0), batch * (n + 1))
    params = ModelParams("avsgs", preset, True, True, True, True)
    config = model_config(
        params, "reference", graphs.attrs["feature_dim"], len(graphs.label_names) + 1, 2
    )
    model = build_separator("avsgs", config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    batches = [collate([data[k] for k in range(i * batch, (i + 1) * batch)]) for i in range(n + 1)]

    def step(b):
        b = {
            **b,
            "wav": b["wav"].to(device),
            "graphs": b["graphs"].to(device),
            "mixture": b["mixture"].to(device),
        }
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


if __name__ == "__main__":
    if len(sys.argv) > 1:  # one measurement in this (fresh) process
        kind, arg = sys.argv[1], sys.argv[2]
        print(json.dumps(steps(arg) if kind == "steps" else loader(int(arg))))
    else:
        for kind, arg in [("steps", "small"), ("steps", "paper"), ("loader", "0"), ("loader", "1")]:
            res = subprocess.run(
                [sys.executable, __file__, kind, arg], capture_output=True, text=True, check=True
            )
            print(res.stdout.strip().splitlines()[-1])
