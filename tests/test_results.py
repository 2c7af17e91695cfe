"""docs/results.md's table is written from real `dvc exp show --json` output (a toy DVC project
with a committed run and two experiments)."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from pipeline import results
from tests.conftest import REPO

SCORE = """
import json, sys, yaml
p = yaml.safe_load(open("params.yaml"))
sdr = {"avsgs": 6.5, "coseparation": 5.25, "audio_only": 1.0}[p["model"]["name"]]
scores = {"sdr": sdr, "sir": sdr + 3, "sar": 12.0, "sdri": sdr - 0.5, "n_pairs": 50}
if p["model"]["name"] == "avsgs":
    scores["sdr_within_clip"] = 3.25
    scores["direction"] = {"10": {"accuracy": 0.5, "majority": 0.56, "source": "probe"},
                           "28": {"accuracy": 0.48, "majority": 0.56, "source": "probe"}}
json.dump(scores, open("metrics/evaluate.json", "w"))
json.dump({"minutes": 3.5, "parameters": 849278}, open("metrics/train.json", "w"))
"""


def _run(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ident = ["-c", "user.name=t", "-c", "user.email=t@t"]
    if args[0] == "git" and args[1] == "commit":
        args = ["git", *ident, *args[1:]]
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("exps")
    dvc = [sys.executable, "-m", "dvc"]
    (root / "metrics").mkdir()
    (root / "score.py").write_text(SCORE)
    (root / "params.yaml").write_text(
        "model:\n  name: avsgs\n  preset: small\n"
        "train:\n  steps: 9\n  batch_size: 8\n  weight_decay: 0.0001\n"
    )
    (root / "dvc.yaml").write_text(
        textwrap.dedent(
            f"""\
            stages:
              score:
                cmd: {sys.executable} score.py
                deps: [score.py]
                params: [model, train]
                metrics:
                  - metrics/evaluate.json: {{cache: false}}
                  - metrics/train.json: {{cache: false}}
            """
        )
    )
    _run(["git", "init", "-q"], root)
    _run([*dvc, "init", "-q"], root)
    _run([*dvc, "repro", "-q"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-qm", "baseline"], root)
    for name in ("coseparation", "audio_only"):
        _run([*dvc, "exp", "run", "-q", "-n", name, "-S", f"model.name={name}"], root)
    return root


def test_rows_come_from_the_commit_and_each_experiment(project):
    states = json.loads(
        _run([sys.executable, "-m", "dvc", "exp", "show", "--json"], project).stdout
    )
    found = {r["run"]: r for r in results.rows(states)}
    assert len(found) == 3 and {"coseparation", "audio_only"} <= set(found)  # + the branch
    assert found["coseparation"]["model.name"] == "coseparation"
    assert found["coseparation"]["sdr"] == 5.25 and found["audio_only"]["sdri"] == 0.5
    baseline = [r for r in found.values() if r["model.name"] == "avsgs"]
    assert len(baseline) == 1 and baseline[0]["train.steps"] == 9


def test_the_doc_table_is_replaced_between_the_markers(project):
    doc = project / "results.md"
    doc.write_text(f"# Results\n\nbefore\n{results.BEGIN}\nold table\n{results.END}\nafter\n")
    _run([sys.executable, "-m", "pipeline.results", "--doc", str(doc)], project)
    text = doc.read_text()
    assert text.startswith("# Results\n\nbefore\n") and text.endswith(f"{results.END}\nafter\n")
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| run | world | model |")
    assert [ln.split(" | ")[2] for ln in lines[1:]] == ["avsgs", "coseparation", "audio_only"]
    assert (
        "| 9 | 8 | 0.0001 | 6.50 | 9.50 | 12.00 | 6.00 | 3.25 | – | – | 50.0% | 56.0% | 48.0% | "
        "56.0% | 3.50 | 0.85 M |" in lines[1]
    )  # avsgs has no motion loss; its directions come from the nested metrics
    # no within-clip score, no direction score
    assert "| 5.25 | 8.25 | 12.00 | 4.75 | – | – | – | – | – | – | – | 3.50 |" in lines[2]
    # runs from before graphs.builder existed had the one graph there was
    assert [ln.split(" | ")[4] for ln in lines[1:]] == ["avsgs"] * 3
    doc.write_text("no markers\n")
    with pytest.raises(subprocess.CalledProcessError) as err:
        _run([sys.executable, "-m", "pipeline.results", "--doc", str(doc)], project)
    assert "markers" in err.value.stderr


def test_the_motion_loss_is_shown_for_asmp_only():
    def state(name):
        params = {"model": {"name": name, "asmp": {"direction_weight": 0.05}}}
        return {
            "rev": "abc",
            "data": {
                "params": {"params.yaml": {"data": params}},
                "metrics": {"metrics/evaluate.json": {"data": {"sdri": 1.0}}},
            },
        }

    assert results._row(state("asmp"), "a")["motion_weight"] == 0.05
    assert results._row(state("avsgs"), "b")["motion_weight"] is None


def test_experiments_of_an_older_commit_are_labelled_with_it(project, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)  # with its refs/exps
    old = _run(["git", "rev-parse", "--short=7", "HEAD"], copy).stdout.strip()
    (copy / "NOTES").write_text("a later commit, with no experiments of its own\n")
    _run(["git", "add", "NOTES"], copy)
    _run(["git", "commit", "-qm", "later"], copy)
    doc = copy / "results.md"
    doc.write_text(f"{results.BEGIN}\n{results.END}\n")
    _run([sys.executable, "-m", "pipeline.results", "--doc", str(doc)], copy)
    assert [ln.split(" | ")[2] for ln in doc.read_text().splitlines()[3:-1]] == ["avsgs"]
    _run([sys.executable, "-m", "pipeline.results", "--doc", str(doc), "--commits", "2"], copy)
    runs = [ln.split(" | ")[0][2:] for ln in doc.read_text().splitlines()[3:-1]]
    assert len(runs) == 3 and runs[1:] == [f"coseparation (at {old})", f"audio_only (at {old})"]
    doc.write_text(f"{results.BEGIN}\n{results.END}\n")
    _run([sys.executable, "-m", "pipeline.results", "--doc", str(doc), "--since", old], copy)
    assert [ln.split(" | ")[0][2:] for ln in doc.read_text().splitlines()[3:-1]] == runs
    with pytest.raises(subprocess.CalledProcessError) as err:
        _run([sys.executable, "-m", "pipeline.results", "--doc", str(doc), "--since", "nope"], copy)
    assert "nope: not a commit" in err.value.stderr
    both = ["--since", old, "--commits", "2"]
    with pytest.raises(subprocess.CalledProcessError) as err:
        _run([sys.executable, "-m", "pipeline.results", "--doc", str(doc), *both], copy)
    assert "not allowed with argument --since" in err.value.stderr


def test_a_changed_default_keeps_the_older_run_and_drops_a_repeat(project, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "checkout", "--", "."], copy)  # the workspace as committed, not the last exp's
    old = _run(["git", "rev-parse", "--short=7", "HEAD"], copy).stdout.strip()
    (copy / "NOTES").write_text("a commit with the same run\n")
    _run(["git", "add", "NOTES"], copy)
    _run(["git", "commit", "-qm", "notes"], copy)
    # the longer run as an experiment, then applied and committed as the new default
    _run([*dvc, "exp", "run", "-q", "-n", "longer", "-S", "train.steps=16000"], copy)
    _run(["git", "add", "-A"], copy)
    _run(["git", "commit", "-qm", "16000 steps"], copy)
    doc = copy / "results.md"
    doc.write_text(f"{results.BEGIN}\n{results.END}\n")
    _run([sys.executable, "-m", "pipeline.results", "--doc", str(doc), "--commits", "3"], copy)
    lines = doc.read_text().splitlines()[3:-1]
    runs = [ln.split(" | ")[0][2:] for ln in lines]
    # the committed 9-step run once, labelled where it was made; "longer" is the new default
    assert len(runs) == 4 and f"committed (at {old})" in runs and "longer" not in " ".join(runs)
    steps = {ln.split(" | ")[0][2:]: ln.split(" | ")[6] for ln in lines}
    assert steps[f"committed (at {old})"] == "9" and steps[runs[0]] == "16000"  # not "0.02 M"
    assert lines and all(ln.split(" | ")[7] == "8" for ln in lines)  # the batch column


def test_a_missing_or_corrupt_saved_output_is_named(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(f"{results.BEGIN}\n{results.END}\n")
    bad = tmp_path / "show.json"
    bad.write_text("{not json")
    for path, says in ((tmp_path / "missing.json", "cannot read it"), (bad, "not JSON")):
        done = subprocess.run(
            [sys.executable, "-m", "pipeline.results", "--json", str(path), "--doc", str(doc)],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 1 and f"{path}: {says}" in done.stderr
        assert "Traceback" not in done.stderr
