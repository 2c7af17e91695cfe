"""The stage entry points: params errors and bad input end the stage with a message, not a trace."""

import json
import shutil

import pytest
import yaml

from tests.conftest import REPO, run_stage


def _params(tmp_path, **source):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["source"].update(source)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path, params


def test_source_and_labels_stages_on_a_small_mirror(tmp_path, shared_data, caplog):
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_data / "audiocaps", mirror)
    path, _ = _params(tmp_path, name="audiocaps", audiocaps={"mirror": str(mirror)})
    out = tmp_path / "source"
    assert run_stage("source", ["--params", str(path), "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["schema_version"] == 1 and meta["source"] == "audiocaps"
    assert meta["splits"] == {"train": 49838, "val": 495, "test": 975}
    manifest, metrics = tmp_path / "labels" / "manifest.jsonl", tmp_path / "labels.json"
    argv = [
        "--params",
        str(path),
        "--clips",
        str(out),
        "--manifest",
        str(manifest),
        "--metrics",
        str(metrics),
    ]
    assert run_stage("labels", argv) == 0
    m = json.loads(metrics.read_text())
    assert set(m) >= {"per_word", "per_class", "splits"}
    assert sum(m["splits"].values()) == sum(1 for _ in manifest.open())


def test_sha256_mismatch_fails_the_stage_and_writes_nothing(tmp_path, shared_data, caplog):
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_data / "audiocaps", mirror)
    (mirror / "test.csv").write_text("audiocap_id,youtube_id,start_time,caption\n")
    path, _ = _params(tmp_path, name="audiocaps", audiocaps={"mirror": str(mirror)})
    out = tmp_path / "source"
    assert run_stage("source", ["--params", str(path), "--out", str(out)]) == 1
    assert "test.csv: sha256" in caplog.text and "nothing was written" in caplog.text
    assert not (out / "clips.jsonl").exists() and not (out / "raw" / "test.csv").exists()


def test_unknown_param_key_stops_the_stage(tmp_path, caplog):
    path, params = _params(tmp_path, audiocaps={"miror": "x"})
    assert run_stage("source", ["--params", str(path), "--out", str(tmp_path / "o")]) == 1
    assert "unknown key source.audiocaps.miror" in caplog.text
    assert str(path) in caplog.text


@pytest.mark.parametrize("name", ["nope", 3])
def test_unknown_source_name(tmp_path, caplog, name):
    path, _ = _params(tmp_path, name=name)
    assert run_stage("source", ["--params", str(path), "--out", str(tmp_path / "o")]) == 1
    assert "source.name: expected one of 'synthetic' | 'audiocaps' | 'music' | 'ave' | 'csv'" in (
        caplog.text
    )


def test_labels_refuses_a_clip_table_of_another_schema(tmp_path, caplog):
    src = tmp_path / "source"
    src.mkdir()
    (src / "meta.json").write_text(json.dumps({"schema_version": 99}))
    (src / "clips.jsonl").write_text("")
    path, _ = _params(tmp_path)
    argv = [
        "--params",
        str(path),
        "--clips",
        str(src),
        "--manifest",
        str(tmp_path / "m.jsonl"),
        "--metrics",
        str(tmp_path / "l.json"),
    ]
    assert run_stage("labels", argv) == 1
    assert "schema_version 99, this code reads 1" in caplog.text
