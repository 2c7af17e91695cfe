"""Training: learning on a tiny batch, determinism, exact resume, DDP under torchrun, the data."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.graphs.store import GraphStore
from pipeline.separation.audio_store import AudioStore, AudioStoreError, pack_audio
from pipeline.separation.data import MixtureDataset, collate, validation_pairs
from pipeline.separation.model import ModelParams, build_separator, load_separator, model_config
from pipeline.separation.spectrogram import SpecConfig
from pipeline.separation.step import RECIPES, compute_losses, separate
from pipeline.separation.train import TrainParams, train
from pipeline.separation.validation import Validation
from tests.conftest import REPO

MODEL = ModelParams.of("avsgs", "tiny")
PARAMS = TrainParams(
    recipe="paper",
    steps=4,
    batch_size=2,
    lr_visual=1e-3,
    lr_separator=1e-3,
    lr_classifier=1e-3,
    weight_decay=1e-4,
    lr_step=3,
    lr_gamma=0.5,
    consistency=True,
    coseparation=True,
    orthogonality=True,
    log_every=1,
    val_every=2,
    val_mixtures=2,
    checkpoint_every=1,
    workers=0,
    threads=1,
)


def _batch(stores, n=2, seed=(0, 0)):
    graphs, audio = GraphStore(stores[0]), AudioStore(stores[1])
    data = MixtureDataset(graphs, audio, graphs.ids("train"), SpecConfig().samples, seed, n)
    return graphs, audio, collate([data[k] for k in range(n)])


@pytest.mark.parametrize("recipe", ["paper", "reference"])
def test_a_few_steps_on_a_tiny_batch_reduce_the_loss(stores, recipe):
    graphs, _, batch = _batch(stores)
    torch.manual_seed(0)
    config = model_config(MODEL, recipe, graphs.attrs["feature_dim"], 4, 2)
    model = build_separator("avsgs", config)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        out = compute_losses(model, batch, RECIPES[recipe], SpecConfig())
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.9 * losses[0], losses


def test_data_is_keyed_by_item_and_pairs_share_no_label(stores):
    graphs, audio = GraphStore(stores[0]), AudioStore(stores[1])
    ids = graphs.ids("train")
    a = MixtureDataset(graphs, audio, ids, 1000, (0, 0), 50)
    b = MixtureDataset(graphs, audio, ids, 1000, (0, 0), 50)
    assert [a.pair(k) for k in range(50)] == [b.pair(k) for k in reversed(range(50))][::-1]
    for k in range(50):
        x, y = a.pair(k)["clip_ids"]
        assert x != y and not a.labels[x] & a.labels[y]
    np.testing.assert_array_equal(a[7]["wav"], b[7]["wav"])
    assert validation_pairs(graphs, audio, graphs.ids("val"), 3, 1000, 0) == validation_pairs(
        graphs, audio, graphs.ids("val"), 3, 1000, 0
    )
    item = collate([a[0], a[1]])
    assert item["wav"].shape == (2, 2, 1000) and item["graphs"].num_graphs == 4
    assert item["mixture"].tolist() == [0, 0, 1, 1]


def test_audio_store_reads_windows_and_refuses_bad_input(stores, tmp_path):
    audio = AudioStore(stores[1])
    whole = audio.read("clip00")
    assert len(whole) == audio.length("clip00") == int(6.5 * 11025)
    np.testing.assert_array_equal(audio.read("clip00", 100, 50), whole[100:150])
    tail = audio.read("clip00", len(whole) - 10, 30)
    assert len(tail) == 30 and (tail[10:] == 0).all()  # padded past the end
    with pytest.raises(AudioStoreError, match="no audio store here"):
        AudioStore(tmp_path / "none.h5")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(AudioStoreError, match="not a readable HDF5 file"):
        AudioStore(tmp_path / "bad.h5")
    old = tmp_path / "old.h5"
    old.write_bytes(stores[1].read_bytes())
    with h5py.File(old, "a") as f:
        f.attrs["schema_version"] = 0
    with pytest.raises(AudioStoreError, match="audio store schema_version 0, this code reads 1"):
        AudioStore(old)
    with pytest.raises(AudioStoreError, match="no clip's audio could be read"):
        pack_audio({"x": tmp_path / "missing.wav"}, tmp_path / "a.h5", 11025)


def _run(stores, tmp_path, name, params=PARAMS, **kw):
    return train(
        stores[0],
        stores[1],
        params,
        MODEL,
        seed=0,
        sample_rate=11025,
        state_path=tmp_path / f"{name}.state.pt",
        model_out=tmp_path / f"{name}.pt",
        live_dir=tmp_path / f"{name}-live",
        **kw,
    )


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


def test_same_seed_same_weights_and_resume_is_exact(stores, tmp_path):
    metrics = _run(stores, tmp_path, "a")
    _run(stores, tmp_path, "b")
    assert _run(stores, tmp_path, "c", stop_after=3) is None  # interrupted after step 3
    assert torch.load(tmp_path / "c.state.pt", weights_only=True)["step"] == 3
    again = _run(stores, tmp_path, "c")  # resumes at step 3
    a, b, c = (_weights(tmp_path / f"{n}.state.pt") for n in "abc")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        torch.testing.assert_close(a[key], c[key], rtol=0, atol=0)
    assert again["val_sdr"] == metrics["val_sdr"] and again["best_step"] == metrics["best_step"]
    assert set(metrics) >= {
        "val_sdr",
        "val_sdr_mixture",
        "val_sdri",
        "best_step",
        "steps_per_second",
    }
    model, meta = load_separator(tmp_path / "a.pt")
    assert meta["recipe"] == "paper" and meta["label_names"] == ["a", "b", "c"]
    assert meta["step"] == metrics["best_step"]
    # the curves are DVCLive's, with the resumed run's history replayed
    for name in ("a", "c"):
        loss = (tmp_path / f"{name}-live" / "plots" / "metrics" / "train" / "loss.tsv").read_text()
        assert loss.splitlines()[0].split("\t") == ["step", "loss"]
        assert [int(r.split("\t")[0]) for r in loss.splitlines()[1:]] == [1, 2, 3, 4]
    # other settings: the state is not reused
    other = dataclasses.replace(PARAMS, lr_separator=2e-3)
    _run(stores, tmp_path, "a", params=other)
    assert not torch.equal(
        _weights(tmp_path / "a.state.pt")["unet.up.6.1.weight"], a["unet.up.6.1.weight"]
    )


def test_a_cosine_schedule_on_short_windows_resumes_and_a_bad_window_is_named(stores, tmp_path):
    params = dataclasses.replace(PARAMS, window=32767, schedule="cosine", steps=4)
    assert _run(stores, tmp_path, "cos", params=params, stop_after=2) is None
    state = torch.load(tmp_path / "cos.state.pt", weights_only=True)
    assert state["scheduler"]["_last_lr"] == pytest.approx([5e-4] * 3)  # half way down
    assert _run(stores, tmp_path, "cos", params=params)["resumed_at_step"] == 2
    state = torch.load(tmp_path / "cos.state.pt", weights_only=True)
    assert state["step"] == 4 and state["scheduler"]["_last_lr"] == pytest.approx([0.0] * 3)
    _, meta = load_separator(tmp_path / "cos.pt")
    assert meta["spec"]["samples"] == 32767  # evaluation separates in windows of this length
    # more steps draw another cosine: unlike the step schedule, the run starts afresh
    longer = dataclasses.replace(params, steps=6)
    assert _run(stores, tmp_path, "cos", params=longer)["resumed_at_step"] == 0
    with pytest.raises(PipelineError, match="train.window 40000 gives 157 STFT frames") as err:
        _run(stores, tmp_path, "bad", params=dataclasses.replace(PARAMS, window=40000))
    assert "use 32768 x 2^k - 1 samples (e.g. 32767 or 65535)" in str(err.value)


def test_a_state_of_another_architecture_under_the_same_params_starts_afresh(
    stores, tmp_path, monkeypatch
):
    params = dataclasses.replace(PARAMS, window=32767, schedule="cosine", steps=4)
    assert _run(stores, tmp_path, "arch", params=params, stop_after=2) is None
    # the code changes the U-Net's widths while the params stay the same
    from pipeline.separation.nn import unet

    widths = unet._channels
    monkeypatch.setattr(unet, "_channels", lambda ngf, levels: widths(ngf + 1, levels))
    assert _run(stores, tmp_path, "arch", params=params)["resumed_at_step"] == 0


def test_a_state_of_other_code_starts_afresh(stores, tmp_path, monkeypatch):
    params = dataclasses.replace(PARAMS, window=32767, schedule="cosine", steps=4)
    assert _run(stores, tmp_path, "same", params=params, stop_after=2) is None
    assert _run(stores, tmp_path, "same", params=params)["resumed_at_step"] == 2
    assert _run(stores, tmp_path, "code", params=params, stop_after=2) is None
    from pipeline.separation import train as train_mod

    monkeypatch.setattr(train_mod, "code_digest", lambda: "another checkout")
    assert _run(stores, tmp_path, "code", params=params)["resumed_at_step"] == 0


def test_the_code_digest_follows_every_source_file(tmp_path):
    from pipeline.separation.train import code_digest

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    (tmp_path / "notes.md").write_text("not code\n")
    first = code_digest(tmp_path)
    (tmp_path / "notes.md").write_text("still not code\n")
    assert code_digest(tmp_path) == first
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    assert code_digest(tmp_path) != first
    assert code_digest() == code_digest()  # the package's own: stable


def test_validation_scores_the_mixtures_once_with_the_same_figures(stores, monkeypatch):
    import pipeline.separation.validation as validation_mod

    graphs_path, audio_path = stores
    graphs, audio = GraphStore(graphs_path), AudioStore(audio_path)
    cfg = SpecConfig(sample_rate=11025, samples=32767)
    pairs = validation_pairs(graphs, audio, graphs.ids("val"), 3, cfg.samples, 0)
    params = ModelParams.of("avsgs", "tiny")
    torch.manual_seed(0)
    model = build_separator("avsgs", model_config(params, "reference", 8, 4, 2))
    calls = []
    scored = validation_mod.bss_eval
    monkeypatch.setattr(
        validation_mod, "bss_eval", lambda *a, **k: calls.append(1) or scored(*a, **k)
    )
    validation = Validation(graphs, audio, pairs, RECIPES["reference"], cfg, 2)
    first = validation(model, torch.device("cpu"))
    assert len(calls) == 2 * len(pairs)  # the separated videos and the mixture
    with torch.no_grad():
        model.unet.up[-1][1].bias.add_(1.0)  # other weights: other estimates
    second = validation(model, torch.device("cpu"))
    assert len(calls) == 3 * len(pairs)  # the mixture's scores are kept
    fresh = Validation(graphs, audio, pairs, RECIPES["reference"], cfg, 3)(model, "cpu")
    assert second == pytest.approx(fresh, rel=1e-7)  # another batching: rounding only
    assert second["sdr"] != pytest.approx(first["sdr"], rel=1e-3)
    assert first["sdr_mixture"] == second["sdr_mixture"] and first["pairs"] == len(pairs)


def test_separate_returns_every_estimate(stores):
    graphs, _, batch = _batch(stores)
    config = model_config(MODEL, "paper", graphs.attrs["feature_dim"], 4, 2)
    model = build_separator("avsgs", config).eval()
    out = separate(model, batch["wav"], batch["graphs"], RECIPES["paper"], SpecConfig())
    n = SpecConfig().samples
    assert out["video"].shape == (2, 2, n) and out["slots"].shape == (2, 2, 3, n)
    torch.testing.assert_close(out["parts"].sum(1), out["mix"])
    # with ratio masks (no clipping) each video's estimate is the sum of its outputs'
    ratio = separate(model, batch["wav"], batch["graphs"], RECIPES["reference"], SpecConfig())
    torch.testing.assert_close(ratio["slots"].sum(2), ratio["video"], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(out["slots"].sum(2), out["video"], atol=1e-3)  # paper: clipped


@pytest.mark.slow
def test_torchrun_two_processes_agree_with_one_and_train(stores, tmp_path, monkeypatch):
    from tests.separation import ddp_grads

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = str(REPO / "tests" / "separation" / "ddp_grads.py")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    threads = torch.get_num_threads()
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    try:  # one process: this one
        ddp_grads.main(*map(str, stores), str(tmp_path / "one.pt"))
    finally:
        torch.set_num_threads(threads)
    # two processes: the same step's gradients, then the stage itself under torchrun with gloo
    params = tmp_path / "params.yaml"
    train_section = {**dataclasses.asdict(PARAMS), "steps": 2}
    params.write_text(
        json.dumps(
            {
                "base": {"seed": 0, "sample_rate": 11025, "device": "cpu"},
                "model": dataclasses.asdict(MODEL),
                "train": train_section,
            }
        )
    )
    args = [
        "--params",
        str(params),
        "--graphs",
        str(stores[0]),
        "--audio",
        str(stores[1]),
        "--state",
        str(tmp_path / "state.pt"),
        "--out",
        str(tmp_path / "model.pt"),
        "--live",
        str(tmp_path / "live"),
        "--metrics",
        str(tmp_path / "train.json"),
    ]
    subprocess.run(
        [*torchrun, script, *map(str, stores), str(tmp_path / "two.pt"), "--", *args],
        check=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    one, two = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in ("one", "two"))
    assert one.keys() == two.keys()
    for key in one:
        if one[key] is not None:
            torch.testing.assert_close(one[key], two[key], rtol=1e-4, atol=1e-6)
    metrics = json.loads((tmp_path / "train.json").read_text())
    assert metrics["processes"] == 2 and metrics["steps"] == 2


@pytest.mark.slow
def test_a_killed_training_stage_resumes_to_the_same_weights(stores, tmp_path):
    params = dataclasses.replace(PARAMS, steps=12, val_every=4)
    _run(stores, tmp_path, "whole", params=params)
    (tmp_path / "params.yaml").write_text(
        json.dumps(
            {
                "base": {"seed": 0, "sample_rate": 11025, "device": "cpu"},
                "model": dataclasses.asdict(MODEL),
                "train": dataclasses.asdict(params),
            }
        )
    )
    state = tmp_path / "state.pt"
    cmd = [
        sys.executable,
        str(REPO / "stages" / "train.py"),
        "--params",
        str(tmp_path / "params.yaml"),
    ]
    cmd += ["--graphs", str(stores[0]), "--audio", str(stores[1]), "--state", str(state)]
    cmd += ["--out", str(tmp_path / "m.pt"), "--live", str(tmp_path / "live")]
    cmd += ["--metrics", str(tmp_path / "train.json")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if state.is_file() and torch.load(state, weights_only=True)["step"] >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(state, weights_only=True)["step"]
    assert 3 <= killed_at < 12 and not (tmp_path / "train.json").exists()
    subprocess.run(cmd, env=env, cwd=tmp_path, check=True, timeout=300)
    got, want = _weights(state), _weights(tmp_path / "whole.state.pt")
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)
    assert json.loads((tmp_path / "train.json").read_text())["steps"] == 12


def test_training_curves_are_logged_in_a_repository_with_no_commit(tmp_path, monkeypatch):
    # DVCLive 3 alone raises scmrepo's "Empty git repo" here (right after `git init`)
    from pipeline.separation.train import _live

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    live = _live("live", [{"step": 0, "loss": 1.0}, {"step": 25, "loss": 0.5}])
    live.end()
    rows = (tmp_path / "live/plots/metrics/loss.tsv").read_text().split()
    assert rows == ["step", "loss", "0", "1.0", "25", "0.5"]


def test_the_training_steps_can_be_called_one_by_one(stores, tmp_path):
    from pipeline.separation import train as tr

    params = dataclasses.replace(PARAMS, window=32767, schedule="cosine", steps=3)
    state = tmp_path / "state.pt"

    def setup():
        return tr.build(params, MODEL, stores, seed=0, sample_rate=11025, device="cpu")

    first = setup()
    progress = tr.resume(first, state, params.steps)
    assert progress.step == 0 and progress.history == []  # no state file: a fresh start
    validation = tr.validation_of(first, params, seed=0)
    batches = tr.loader(first, params, 0, 0, 2)
    assert tr.run_steps(first, params, progress, batches, validation, state) == 2
    assert progress.step == 2 and progress.best["step"] == 2 and state.is_file()
    second = setup()  # a new process: the same key, so the state resumes
    resumed = tr.resume(second, state, params.steps)
    assert resumed.step == 2 and resumed.best["sdr"] == progress.best["sdr"]
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)
    tr.run_steps(second, params, resumed, tr.loader(second, params, 0, 2, 3), validation, state)
    out = tr.final_metrics(second, params, MODEL, resumed, validation, tmp_path / "m.pt")
    assert out["steps"] == 3 and out["best_step"] in (2, 3) and (tmp_path / "m.pt").is_file()
    payload = torch.load(state, weights_only=False)
    payload["schema_version"] = 1  # a state of the schema before issue 28: not resumed
    torch.save(payload, state)
    assert tr.resume(setup(), state, params.steps).step == 0
