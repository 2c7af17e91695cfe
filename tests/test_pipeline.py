"""Smoke test: the whole `dvc repro` in a temporary copy of the repository."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO


def _copy_repo(dest):
    """The checkout's tracked and untracked-but-not-ignored files, without data or lock (the same
    copy as the CUDA benchmark makes)."""
    spec = importlib.util.spec_from_file_location(
        "cuda_pipeline", REPO / "benchmarks" / "cuda_pipeline.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.copy_checkout(dest)


@pytest.mark.slow
@pytest.mark.pipeline
def test_dvc_repro_end_to_end(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    # A tiny synthetic world: the same stages and code paths, in seconds.
    splits = {"train": 6, "val": 3, "test": 4}
    clips = sum(splits.values())
    sizes = {f"n_{split}": n for split, n in splits.items()}
    params["source"]["synthetic"].update(**sizes, seconds=3.0, size=128)
    params["detector"]["train"].update(
        iterations=40, image_size=128, eval_every=0, frame_stride=2, eval_stride=4
    )  # the frames are 128 px: training at their size, not 192, is twice as fast
    # a 40-iteration detector is unsure: keep all its boxes so graphs get made
    params["detect"]["min_score"] = 0.0
    params["graphs"]["min_score"] = 0.0
    params["model"]["preset"] = "tiny"
    params["train"].update(
        steps=4,
        batch_size=2,
        log_every=1,
        val_every=2,
        val_mixtures=2,
        checkpoint_every=2,
        workers=0,
    )
    params["evaluate"].update(n_pairs=2, report_examples=1)
    params["evaluate"]["direction"].update(train_pairs=4, steps=10, batch_size=16)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(repo)}
    # a checkout as users have one: a git repository with a commit (DVCLive reads its revision)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    ident = ["-c", "user.name=smoke", "-c", "user.email=smoke@example.invalid"]
    subprocess.run(["git", *ident, "commit", "-qm", "smoke"], cwd=repo, check=True)
    dvc = [sys.executable, "-m", "dvc"]
    done = subprocess.run([*dvc, "repro"], cwd=repo, env=env)
    graphs_json = repo / "metrics/graphs.json"
    assert done.returncode == 0, graphs_json.read_text() if graphs_json.is_file() else "no graphs"
    for out in (
        "data/source/clips.jsonl",
        "data/source/meta.json",
        "data/labels/manifest.jsonl",
        "data/download/status.jsonl",
        "data/detector/detector.pt",
        "data/detect/detections.zarr/zarr.json",
        "data/graphs/graphs.h5",
        "plots/graph_sizes.csv",
        "data/audio/audio.h5",
        "data/train/model.pt",
        "data/train/state.pt",
        "plots/train/plots/metrics/train/loss.tsv",
        "plots/train/plots/metrics/val/sdr.tsv",
        "data/evaluate/pairs.json",
        "data/evaluate/scores.csv",
        "reports/evaluate/index.html",
    ):
        assert (repo / out).is_file(), out
    download = json.loads((repo / "metrics/download.json").read_text())
    assert download["ok"] == clips and download["failed"] == 0
    detector = json.loads((repo / "metrics/detector.json").read_text())
    assert set(detector) >= {"map50", "per_class", "curve"} and len(detector["curve"]) == 1
    detect = json.loads((repo / "metrics/detect.json").read_text())
    assert detect["clips"] == clips and detect["frames_per_clip"] == 6
    graphs = json.loads((repo / "metrics/graphs.json").read_text())
    assert graphs["graphs"] + graphs["skipped"] == clips
    assert set(graphs) >= {"nodes_per_graph", "context_per_principal", "skipped_per_reason"}
    assert graphs["motion"]["windows"] > 0  # the default's derived motion labels
    trained = json.loads((repo / "metrics/train.json").read_text())
    assert trained["steps"] == 4 and set(trained) >= {"val_sdr", "val_sdr_mixture", "val_sdri"}
    scored = json.loads((repo / "metrics/evaluate.json").read_text())
    assert set(scored) >= {"sdr", "sir", "sar", "sdr_mixture", "sdri", "oracle_ibm_sdr", "n_pairs"}
    metrics = json.loads((repo / "metrics/labels.json").read_text())
    assert set(metrics) >= {"per_word", "per_class", "splits", "summary"}
    assert len(metrics["per_word"]) == 305
    assert metrics["splits"] == splits  # every synthetic clip is mined
    status = subprocess.run(
        [*dvc, "status"], cwd=repo, check=True, env=env, capture_output=True, text=True
    )
    assert "up to date" in status.stdout
    shown = subprocess.run(
        [*dvc, "metrics", "show", "--json"],
        cwd=repo,
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "per_class" in shown.stdout
    # Swapping the front end and the separator reruns what follows, as an experiment; the results
    # table is written from `dvc exp show`.
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", *ident, "commit", "-qm", "default run"], cwd=repo, check=True)
    swap = [f"{k}={v}" for k, v in SOBB.items()]
    args = [a for kv in swap for a in ("-S", kv)]
    subprocess.run([*dvc, "exp", "run", "-n", "sobb", *args], cwd=repo, env=env, check=True)
    detect = json.loads((repo / "metrics/detect.json").read_text())
    assert detect["feature_dim"] == 3 * params["detect"]["crop"] ** 2
    trained = json.loads((repo / "metrics/train.json").read_text())
    scored = json.loads((repo / "metrics/evaluate.json").read_text())
    assert trained["steps"] == 4 and scored["model"] == "sobb"
    doc = tmp_path / "results.md"
    doc.write_text("<!-- results:begin -->\n<!-- results:end -->\n")
    subprocess.run(
        [sys.executable, "-m", "pipeline.results", "--doc", str(doc)], cwd=repo, env=env, check=True
    )
    models = [ln.split(" | ")[2] for ln in doc.read_text().splitlines() if ln.startswith("| ")]
    assert sorted(models[1:]) == ["avsgs", "sobb"]


# docs/results.md lists this swap
SOBB = {
    "detect.backend": "proposals",
    "class_map.name": "proposals",
    "graphs.iou": 0.0,
    "graphs.min_score": 0.0,
    "model.name": "sobb",
}
