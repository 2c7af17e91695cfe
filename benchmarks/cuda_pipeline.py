"""The tiny pipeline end to end on a CUDA GPU: every stage's wall time, training steps per second
and the peak GPU memory of training.

It copies the checkout into a temporary folder, sets a tiny synthetic world and ``base.device:
cuda`` (so a stage that silently fell back to the CPU, or left a tensor there, fails), and runs
each stage with ``dvc repro --single-item`` in order. Without a GPU it stops at once and says so.

Usage: ``uv run python benchmarks/cuda_pipeline.py [--steps 200] [--keep DIR]``; figures go to
docs/model.md ("On a GPU").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = (
    "source",
    "labels",
    "download",
    "detector",
    "detect",
    "graphs",
    "audio",
    "train",
    "evaluate",
)


def copy_checkout(dest: Path) -> None:
    """The tracked and untracked-but-not-ignored files of the checkout, without data or lock."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file() and not rel.startswith(("data/", "metrics/")) and rel != "dvc.lock":
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def tiny_params(path: Path, steps: int) -> None:
    params = yaml.safe_load(path.read_text())
    params["base"]["device"] = "cuda"
    params["source"]["synthetic"].update(n_train=12, n_val=4, n_test=6, seconds=4.0, size=128)
    params["detector"]["train"].update(iterations=100, eval_every=0)
    params["detect"]["min_score"] = 0.0
    params["graphs"]["min_score"] = 0.0
    params["train"].update(steps=steps, batch_size=8, val_every=max(1, steps // 2), val_mixtures=4)
    params["evaluate"].update(n_pairs=10, report_examples=1)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps")
    parser.add_argument("--keep", help="run in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print(
            f"benchmarks/cuda_pipeline.py: torch {torch.__version__} sees no CUDA GPU "
            f"(CUDA build {torch.version.cuda}); run it on a machine with one",
            file=sys.stderr,
        )
        return 2
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="avsgs-cuda-"))
    root.mkdir(parents=True, exist_ok=True)
    copy_checkout(root)
    tiny_params(root / "params.yaml", args.steps)
    env = {**os.environ, "PYTHONPATH": str(root)}
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    if not (root / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        subprocess.run(["git", "add", "-A"], cwd=root, check=True)
        subprocess.run(["git", *ident, "commit", "-qm", "bench"], cwd=root, check=True)
    seconds = {}
    for stage in STAGES:
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "dvc", "repro", "-s", stage], cwd=root, env=env
        )
        seconds[stage] = round(time.perf_counter() - t0, 1)
        if done.returncode:
            print(json.dumps({"failed_stage": stage, "seconds": seconds}, indent=2))
            return 1
    train = json.loads((root / "metrics/train.json").read_text())
    scored = json.loads((root / "metrics/evaluate.json").read_text())
    print(
        json.dumps(
            {
                "gpu": torch.cuda.get_device_name(0),
                "torch": torch.__version__,
                "seconds_per_stage": seconds,
                "train_steps": train["steps"],
                "train_steps_per_second": train["steps_per_second"],
                "train_peak_gpu_GiB": train.get("peak_gpu_GiB"),
                "device": train.get("device"),
                "evaluate_sdri": scored.get("sdri"),
            },
            indent=2,
        )
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
