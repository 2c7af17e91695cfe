"""The users' real paths, offline: AudioCaps-, MUSIC-, AVE- and CSV-shaped runs from real ids of
../shared/data through a 127.0.0.1 server that serves media in real-world shapes, a `file`
detector with COCO's classes, and the graphs. The AudioCaps-shaped run goes on through training
and evaluation (the whole `dvc repro`); the MUSIC- and AVE-shaped ones stop once the graph and
audio stores are written, since every stage after them reads only those stores, whose format is the
same from every source (the AudioCaps run and the synthetic smoke test, tests/test_pipeline.py,
cover them); the CSV-shaped one stops after the download (see its test).

Each run is a temporary copy of the repository at tiny sizes (a few clips, a few training steps).
The detector is a checkpoint this test writes in torchvision's layout: an untrained small FPN
whose class head is biased to "person", so every box it finds is a person and a clip whose objects
a person does not show is skipped with its reason.
"""

from __future__ import annotations

import csv
import functools
import http.server
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from pipeline import media
from tests.conftest import start_server
from tests.test_pipeline import _copy_repo

pytestmark = [pytest.mark.slow, pytest.mark.pipeline]

SHAPES = [  # (width, height, fps, audio rate or None): what YouTube serves, roughly
    (640, 360, 25, 44100),
    (1280, 720, 30, 48000),
    (640, 360, 30, 48000),
    (1280, 720, 25, 44100),
]


def make_video(path: Path, seconds: float, shape, tone: float, faststart=False) -> None:
    """An H.264 mp4 of ``seconds`` with stereo AAC at the shape's rate (None: no audio); its index
    at the end as ffmpeg writes it (a server without range requests cannot be cut remotely then)
    or, with ``faststart``, at the start."""
    w, h, fps, rate = shape
    cmd = [media.ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={fps}:duration={seconds}"]
    if rate:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate={rate}:duration={seconds}"]
        cmd += ["-ac", "2", "-c:a", "aac", "-b:a", "64k"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "40", "-pix_fmt", "yuv420p"]
    cmd += ["-movflags", "+faststart"] if faststart else []
    subprocess.run([*cmd, "-shortest", str(path)], check=True)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that hangs up mid-body
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server on 127.0.0.1 over a folder; yields (folder, base URL)."""
    root = tmp_path_factory.mktemp("served")
    handler = functools.partial(_Quiet, directory=str(root))
    srv = _Server(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    yield root, start_server(srv)
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def coco_detector(tmp_path_factory):
    """A small-FPN checkpoint (a plain state dict, torchvision's layout) with COCO's 90 class
    names, and the class list: (checkpoint, classes file)."""
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

    from pipeline.detection.model import small_fpn

    names = FasterRCNN_ResNet50_FPN_Weights.DEFAULT.meta["categories"][1:]
    torch.manual_seed(0)
    model = small_fpn(num_classes=len(names) + 1)
    bias = model.roi_heads.box_predictor.cls_score.bias
    with torch.no_grad():
        bias.fill_(-4.0)
        bias[1 + names.index("person")] = 8.0  # every box is a confident person
    root = tmp_path_factory.mktemp("coco")
    torch.save({"model": model.state_dict()}, root / "coco_small_fpn.pth")
    (root / "coco_classes.txt").write_text("\n".join(names) + "\n")
    return root / "coco_small_fpn.pth", root / "coco_classes.txt"


def make_repo(tmp_path: Path, detector, **sections) -> Path:
    """A git repository copy of the project with tiny params, the COCO `file` detector in
    inputs/detector and ``sections`` merged into params.yaml."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    for src in detector:
        (repo / "inputs/detector" / src.name).write_bytes(src.read_bytes())
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["base"]["device"] = "cpu"
    params["download"].update(size=128, fps=4, workers=2, requests_per_second=0, timeout=10.0)
    params["detector"].update(
        kind="file",
        file={
            "path": f"inputs/detector/{detector[0].name}",
            "architecture": "small_fpn",
            "classes": f"inputs/detector/{detector[1].name}",
        },
    )
    params["class_map"]["name"] = "coco"
    params["detect"].update(fps=1.0, max_boxes=5, min_score=0.05, batch_size=4)
    params["model"]["preset"] = "tiny"
    params["train"].update(
        steps=3, batch_size=2, log_every=1, val_every=3, val_mixtures=2, checkpoint_every=3
    )
    params["evaluate"].update(n_pairs=2, report_examples=1)
    for key, value in sections.items():
        section, _, name = key.partition(".")
        node = params[section]
        *path, leaf = name.split(".")
        for p in path:
            node = node[p]
        node[leaf] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    return repo


def git(repo, *args):
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", *ident, *args], cwd=repo, check=True)


def dvc(repo, *args, check=True):
    env = {**os.environ, "PYTHONPATH": str(repo)}
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, check=check)


def dvc_status(repo, *targets) -> str:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "status", *targets],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def metrics(repo, name):
    return json.loads((repo / "metrics" / f"{name}.json").read_text())


# the stages after which every source's stores look alike (see the module)
STORES = ("graphs", "audio")


def check_reached_stores(repo):
    """The graph and audio stores are written and those stages up to date."""
    for out in ("data/graphs/graphs.h5", "data/audio/audio.h5"):
        assert (repo / out).is_file(), out
    status = dvc_status(repo, *STORES)
    assert "up to date" in status, status


def check_reached_evaluate(repo):
    for out in ("data/graphs/graphs.h5", "data/train/model.pt", "reports/evaluate/index.html"):
        assert (repo / out).is_file(), out
    scored = metrics(repo, "evaluate")
    assert scored["n_pairs"] >= 1 and "sdri" in scored
    status = dvc_status(repo)
    assert "up to date" in status, status


def audiocaps_rows(shared: Path, per_split: dict[str, int]) -> dict[str, list[dict]]:
    """Real AudioCaps rows whose mined labels are only man and baby (what a person-only detector
    shows), with a start within 30 s, per split; the test split gets one of each."""
    from pipeline.labels.dictionary import load_dictionary
    from pipeline.labels.mine import LabelsParams, mine_labels
    from pipeline.sources.captions_csv import read_caption_csv

    out: dict[str, list[dict]] = {}
    for split, n in per_split.items():
        with (shared / f"{split}.csv").open(newline="") as fh:
            # train has one caption per clip, so its head holds whole clips; val and test have
            # five per clip, anywhere in the file, so all of them are read
            head = [next(fh) for _ in range(1500)] if split == "train" else fh.readlines()
        part = Path(os.environ.get("TMPDIR", "/tmp")) / f"ac-{os.getpid()}-{split}.csv"
        part.write_text("".join(head))
        clips = {c.clip_id: c for c in read_caption_csv(part, "audiocaps", split=split)}
        part.unlink()
        manifest, _ = mine_labels(
            list(clips.values()), LabelsParams("either", "blank:en", 500), load_dictionary()
        )
        chosen, seen = [], set()
        for rec in manifest:
            clip = clips[rec["clip_id"]]
            objs = tuple(rec["principal_objects"])
            if len(objs) != 1 or objs[0] not in ("man", "baby") or clip.start > 30:
                continue
            if split == "test" and objs in seen:
                continue
            seen.add(objs)
            chosen.append({"youtube_id": clip.youtube_id, "start": clip.start, "objects": objs})
            if len(chosen) == n:
                break
        assert len(chosen) == n, (split, chosen)
        out[split] = chosen
    return out


def test_audiocaps_shaped_run(tmp_path, server, coco_detector, shared_data):
    root, base = server
    rows = audiocaps_rows(shared_data / "audiocaps", {"train": 3, "val": 2, "test": 2})
    every = [r for split in ("train", "val", "test") for r in rows[split]]
    for i, row in enumerate(every):
        shape = SHAPES[i % len(SHAPES)]
        if i == 1:  # one video has no audio track
            shape = (*shape[:3], None)
        path = root / f"{row['youtube_id']}.mp4"
        make_video(path, row["start"] + 13, shape, 300 + 90 * i, faststart=i % 2 == 0)
    ids = [r["youtube_id"] for r in every]
    repo = make_repo(
        tmp_path,
        coco_detector,
        **{
            "source.name": "audiocaps",
            "source.audiocaps.ids": ids,
            "download.min_ok_fraction": 0.5,
        },
    )
    repo_mirror = str(shared_data / "audiocaps")
    # The documented -S form of a template with braces: quoted inside the value.
    dvc(
        repo,
        "exp",
        "run",
        "-S",
        f"source.audiocaps.mirror={repo_mirror}",
        "-S",
        f"download.url_template='{base}/{{youtube_id}}.mp4'",
    )
    got = metrics(repo, "download")
    assert got["clips"] == len(ids) and got["ok"] == len(ids) - 1, got
    status = {r["youtube_id"]: r for r in jsonl(repo / "data/download/status.jsonl")}
    silent = status[every[1]["youtube_id"]]
    assert (silent["status"], silent["reason"]) == ("failed", "no audio"), silent
    assert all(r["url"].startswith(base) for r in status.values())
    assert metrics(repo, "labels")["splits"] == {"train": 3, "val": 2, "test": 2}
    check_reached_evaluate(repo)


def test_music_shaped_run(tmp_path, server, coco_detector, shared_data):
    from pipeline.params import BaseParams
    from pipeline.sources.music import MusicParams, download_music, prepare_music

    root, base = server
    # the real lists' splits, drawn as the source stage draws them (seed 0)
    scratch = tmp_path / "lists"
    settings = MusicParams(str(shared_data / "music"), ["solo", "duet"], 0.1, 0.1)
    download_music(scratch, settings)
    clips = prepare_music(scratch, settings, BaseParams(seed=0, sample_rate=11025))
    duet = [c for c in clips if len(c.category) == 2]
    solo = [c for c in clips if len(c.category) == 1]
    pick = [next(c for c in duet if c.split == "train")]
    for split, n in (("train", 1), ("val", 1), ("test", 2)):
        chosen = [c for c in solo if c.split == split]
        pick += [c for c in chosen if c.category not in {p.category for p in pick}][:n]
    for i, clip in enumerate(pick):
        seconds = 30 + 10 * (i % 4)  # 30-60 s: 2-5 clips of 10 s after a 10 s skip
        make_video(root / f"{clip.youtube_id}.mp4", seconds, SHAPES[i % len(SHAPES)], 220 + 70 * i)
    repo = make_repo(
        tmp_path,
        coco_detector,
        **{
            "source.name": "music",
            "source.music.mirror": str(shared_data / "music"),
            "source.music.ids": [c.youtube_id for c in pick],
            "download.url_template": base + "/{youtube_id}.mp4",
        },
    )
    dvc(repo, "repro", *STORES)
    rows = jsonl(repo / "data/download/status.jsonl")
    expected = sum(2 + (i % 4) for i in range(len(pick)))
    assert len(rows) == expected and all(r["status"] == "ok" for r in rows)
    assert {r["parent"] for r in rows} == {c.clip_id for c in pick}
    by_parent = {c.clip_id: c for c in pick}
    for r in rows:  # every 10 s clip is labelled by its video's category (duets by both)
        assert r["principal_objects"] == list(by_parent[r["parent"]].category)
    graphs = metrics(repo, "graphs")
    assert graphs["clips"] == expected and graphs["graphs"] >= 1
    check_reached_stores(repo)


def test_ave_shaped_run(tmp_path, server, coco_detector, shared_data):
    """AVE's real ids (ASMP's second dataset), its categories shown by a person (speech, a baby,
    instruments) and one a COCO detector cannot show (a church bell: its clip is skipped), served
    as the authors' 10 s cuts at a lab mirror (``download.url_template``)."""
    from pipeline.sources.ave import AveParams, download_ave, prepare_ave

    root, base = server
    scratch = tmp_path / "lists"
    download_ave(scratch, AveParams(mirror=str(shared_data / "ave")))
    clips = prepare_ave(scratch, AveParams())
    seen = Counter(c.youtube_id for c in clips)  # a video annotated twice is left out
    wanted = {
        "train": ["man", "woman", "bell"],
        "val": ["baby", "woman"],
        "test": ["man", "flute"],
    }
    pick = []
    for split, objects in wanted.items():
        for obj in objects:
            pick.append(next(
                c for c in clips
                if c.split == split and c.category == (obj,) and seen[c.youtube_id] == 1
                and c not in pick
            ))  # fmt: skip
    for i, clip in enumerate(pick):
        make_video(root / f"{clip.youtube_id}.mp4", 10.0, SHAPES[i % len(SHAPES)], 240 + 60 * i)
    repo = make_repo(
        tmp_path,
        coco_detector,
        **{
            "source.name": "ave",
            "source.ave.mirror": str(shared_data / "ave"),
            "source.ave.ids": [c.youtube_id for c in pick],
            "download.url_template": base + "/{youtube_id}.mp4",
        },
    )
    dvc(repo, "repro", *STORES)
    labels = metrics(repo, "labels")
    assert labels["splits"] == {"train": 3, "val": 2, "test": 2}
    assert labels["ave"]["per_category"]["Church bell"]["train"] == 1
    assert labels["ave"]["coco_unmapped_clips"] == 1
    rows = jsonl(repo / "data/download/status.jsonl")
    assert len(rows) == len(pick) and all(r["status"] == "ok" for r in rows)
    graphs = metrics(repo, "graphs")
    assert graphs["graphs"] == len(pick) - 1, graphs  # the bell's clip: no COCO class shows it
    # no depth for the oracle off the scenes world: the graphs go without motion labels
    assert "goes without" in graphs["motion"]["skipped"]
    check_reached_stores(repo)


def test_csv_shaped_run(tmp_path, server, coco_detector):
    """A user's own list of clips: what is the CSV source's own (the rows it refuses, URLs that
    are not YouTube ids, the list as a DVC dependency) ends with the downloaded media and the
    mined labels; from there on the stages see what the AudioCaps-shaped run gives them (the same
    captions mined, the same media layout). A list outside inputs/ is refused:
    tests/test_inputs.py."""
    root, base = server
    captions = ["A man laughs", "A baby cries", "A man laughs loudly", "A baby is crying"]
    lines = ["url,start_time,caption,split"]
    splits = ["train", "train", "train", "val", "val", "test", "test"]
    for i, split in enumerate(splits):
        name = f"my-clip-{i}.mp4"
        make_video(root / name, 12, SHAPES[i % len(SHAPES)], 250 + 60 * i)
        caption = captions[i % 2] if split != "test" else captions[i % 2 + 2]
        lines.append(f"{base}/{name},1,{caption},{split}")
    lines.insert(3, f"{base}/x.mp4,minus one,A man speaks,train")  # line 4: a bad start
    lines.insert(6, "ftp://127.0.0.1/y.mp4,0,A man speaks,train")  # line 7: a bad scheme
    repo = make_repo(tmp_path, coco_detector, **{"source.name": "csv"})
    (repo / "inputs/source/my_clips.csv").write_text("\n".join(lines) + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "my list")
    listed = "source.csv.path=inputs/source/my_clips.csv"
    dvc(repo, "exp", "run", "-S", listed, "labels", "download")
    rejected = jsonl(repo / "data/source/rejected.jsonl")
    assert [r["line"] for r in rejected] == [4, 7]
    assert metrics(repo, "download")["ok"] == len(splits)
    assert metrics(repo, "labels")["splits"] == {"train": 3, "val": 2, "test": 2}
    status = {r["clip_id"]: r for r in jsonl(repo / "data/download/status.jsonl")}
    assert all(r["url"].startswith(base + "/my-clip-") for r in status.values())
    assert "up to date" in dvc_status(repo, "labels", "download")
    # the list is a DVC dependency: editing it re-runs the pipeline
    with (repo / "inputs/source/my_clips.csv").open("a") as fh:
        fh.write(f"{base}/my-clip-0.mp4,5,A man speaks,train\n")
    out = dvc_status(repo)
    assert "inputs/source" in out and "modified" in out, out


def test_the_coco_checkpoint_is_torchvisions_layout(coco_detector):
    state = torch.load(coco_detector[0], weights_only=True)["model"]
    assert "roi_heads.box_predictor.cls_score.weight" in state
    assert state["roi_heads.box_predictor.cls_score.weight"].shape[0] == 91
    names = coco_detector[1].read_text().split("\n")
    assert names[0] == "person" and "cell phone" in names
    with open(coco_detector[1]) as fh:
        assert len(list(csv.reader(fh))) == 90
