"""The HTML report: metrics, training curves and, for a handful of test pairs, the key frames with
the graph's boxes, spectrograms and audio players. A folder: ``index.html`` plus ``assets/``."""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

from pipeline import io, media
from pipeline.download.store import MediaStore
from pipeline.graphs.roles import Role
from pipeline.motion import direction_name

log = logging.getLogger(__name__)
ROLE_COLOURS = {
    Role.PRINCIPAL: (230, 40, 40),
    Role.CONTEXT: (250, 200, 0),
    Role.BACKGROUND: (40, 120, 250),
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def key_frames(video: Path, nodes: dict[str, np.ndarray], out: Path) -> list[str]:
    """One PNG per principal slot: the slot's key frame with its principal box (red), its context
    boxes (yellow) and, when the background crop is on that frame, the crop (blue)."""
    frames = media.decode_frames(video)
    fps = media.probe(video).get("fps") or 1.0
    names = []
    for slot in sorted(set(nodes["slot"][nodes["role"] == Role.PRINCIPAL].tolist())):
        principal = int(
            np.flatnonzero((nodes["role"] == Role.PRINCIPAL) & (nodes["slot"] == slot))[0]
        )
        t = nodes["time"][principal]
        image = Image.fromarray(frames[min(int(round(t * fps)), len(frames) - 1)])
        draw = ImageDraw.Draw(image)
        on_frame = np.flatnonzero(
            ((nodes["slot"] == slot) | (nodes["role"] == Role.BACKGROUND))
            & (nodes["frame"] == nodes["frame"][principal])
        )
        for i in on_frame[::-1]:  # principal drawn last, on top
            draw.rectangle(
                nodes["box"][i].tolist(), outline=ROLE_COLOURS[Role(int(nodes["role"][i]))], width=2
            )
        name = f"{out.stem}_slot{slot}.png"
        image.save(out.parent / name)
        names.append(name)
    return names


def spectrograms(signals: dict[str, np.ndarray], rate: int, path: Path) -> None:
    """Log-magnitude spectrograms of ``signals`` (title -> waveform), one panel each."""
    import librosa

    plt = _plt()
    fig, axes = plt.subplots(1, len(signals), figsize=(3 * len(signals), 2.6), sharey=True)
    for ax, (title, wav) in zip(np.atleast_1d(axes), signals.items(), strict=True):
        mag = np.abs(librosa.stft(wav.astype(np.float32), n_fft=1022, hop_length=256))
        db = librosa.amplitude_to_db(mag, ref=1.0, top_db=80)
        ax.imshow(
            db,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=db.max() - 80,
            extent=[0, len(wav) / rate, 0, rate / 2000],
        )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("s")
    np.atleast_1d(axes)[0].set_ylabel("kHz")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def curves(live_dir: Path, path: Path) -> bool:
    """Training loss and validation SDR from DVCLive's TSV files; False when there are none."""
    metrics = Path(live_dir) / "plots" / "metrics"
    series = {}
    for name in ("train/loss", "val/sdr", "val/sdr_mixture"):
        tsv = metrics / f"{name}.tsv"
        if tsv.is_file():
            rows = [r.split("\t") for r in tsv.read_text().splitlines()[1:] if r.strip()]
            series[name] = (
                np.array([float(r[0]) for r in rows]),
                np.array([float(r[1]) for r in rows]),
            )
    if not series:
        return False
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3))
    if "train/loss" in series:
        left.plot(*series["train/loss"])
    left.set(title="training loss", xlabel="step")
    for name, style in (("val/sdr", "-o"), ("val/sdr_mixture", "--")):
        if name in series:
            right.plot(*series[name], style, label=name.split("/")[1])
    right.set(title="validation SDR (dB)", xlabel="step")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def _wav(path: Path, wav: np.ndarray, rate: int) -> None:
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    scaled = (
        wav / peak * 0.95 if peak > 0.95 else wav
    )  # no clipping; quieter files stay as they are
    sf.write(path, scaled.astype(np.float32), rate, subtype="PCM_16")


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{cells}</table>"


def _direction_table(d: dict[str, Any]) -> str:
    """The direction-of-motion accuracies (:mod:`pipeline.evaluation.directions`)."""
    head = (
        "<tr><th>scheme</th><th>accuracy</th><th>by</th><th>majority vote</th>"
        "<th>clean audio (ceiling)</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{s} classes</td><td>{d[s]['accuracy']}</td><td>{d[s]['source']}</td>"
        f"<td>{d[s]['majority']} ({html.escape(direction_name(d[s]['majority_class'], int(s)))})"
        f"</td><td>{d[s]['clean']} (majority {d[s].get('clean_majority')})</td></tr>"
        for s in ("10", "28")
    )
    return (
        "<h3>Direction of motion (from the separated audio, per source and 1 s window)</h3>"
        f"<p>{d['test_samples']} test windows; probes trained on {d['train_samples']} windows "
        f"of separated train mixtures (clean: {d.get('clean_test_samples', 0)} test windows of "
        f"one-source clips)</p><table>{head}{rows}</table>"
    )


def _directions(ex: dict[str, Any]) -> str:
    """An example's true and predicted direction per source and window (arrows: image plane,
    v down; away / toward: depth); wrong predictions in red."""
    clips = ex["pair"]["clip_ids"]

    def cells(r: dict[str, Any], scheme: int) -> str:
        true, pred = r[f"true{scheme}"], r[f"pred{scheme}"]
        style = "" if pred == true else " style='color:#b00'"
        return (
            f"<td>{html.escape(direction_name(true, scheme))}</td>"
            f"<td{style}>{html.escape(direction_name(pred, scheme))}</td>"
        )

    rows = "".join(
        f"<tr><td>{html.escape(clips[r['side']])}</td><td>{r['slot']}</td>"
        f"<td>{r['window']}-{r['window'] + 1} s</td>{cells(r, 10)}{cells(r, 28)}</tr>"
        for r in ex["directions"]
    )
    head = (
        "<tr><th>clip</th><th>slot</th><th>window</th><th>true (10)</th><th>predicted (10)</th>"
        "<th>true (28)</th><th>predicted (28)</th></tr>"
    )
    return f"<details><summary>Direction of motion</summary><table>{head}{rows}</table></details>"


def _example(i: int, ex: dict[str, Any], graphs, media_dir, assets: Path) -> list[str]:
    """One example pair's HTML: its scores, its objects' key frames with their boxes, the
    spectrograms and players of the mixture, the estimates and the references."""
    a, b = ex["pair"]["clip_ids"]
    rate, row = ex["rate"], ex["row"]
    parts = [f"<h3>Pair {ex['pair']['pair']}: {html.escape(a)} + {html.escape(b)}</h3>"]
    parts.append(
        _table(
            [
                (
                    f"{c} ({row[f'labels_{s}']})",
                    f"SDR {row[f'sdr_{s}']:.2f} dB (mixture {row[f'sdr_mixture_{s}']:.2f})",
                )
                for s, c in (("a", a), ("b", b))
            ]
        )
    )
    frames = []
    for side, cid in (("a", a), ("b", b)):
        video = MediaStore(media_dir).video(cid) if media_dir else None
        if video is not None and video.is_file():
            try:
                frames += key_frames(video, graphs.read(cid), assets / f"ex{i}_{side}.png")
            except media.MediaError as err:
                log.warning("report: no key frame for %s: %s", cid, err)
    if frames:
        parts.append(
            "<div class='frames'>"
            + "".join(f"<img src='assets/{n}' alt='key frame'>" for n in frames)
            + "</div>"
        )
    signals = {
        "mixture": ex["mix"],
        f"estimate {a}": ex["video"][0],
        f"reference {a}": ex["parts"][0],
        f"estimate {b}": ex["video"][1],
        f"reference {b}": ex["parts"][1],
    }
    spectrograms(signals, rate, assets / f"ex{i}_spec.png")
    parts.append(f"<img src='assets/ex{i}_spec.png' alt='spectrograms'>")
    players = []
    for j, (title, wav) in enumerate(signals.items()):
        name = f"ex{i}_{j}.wav"
        _wav(assets / name, wav, rate)
        player = f"<audio controls preload='metadata' src='assets/{name}'></audio>"
        players.append(f"<td>{html.escape(title)}<br>{player}</td>")
    parts.append("<table><tr>" + "".join(players) + "</tr></table>")
    if ex.get("directions"):
        parts.append(_directions(ex))
    return parts


def write_report(
    out_dir: str | Path,
    metrics: dict[str, Any],
    examples: list[dict[str, Any]],
    graphs,
    media_dir: str | Path | None,
    live_dir: str | Path | None,
) -> Path:
    """Write ``out_dir/index.html`` and its assets; returns the page's path.

    ``examples`` come from :func:`pipeline.evaluation.run.evaluate_all`; ``graphs`` is the
    :class:`~pipeline.graphs.store.GraphStore` (for the boxes); ``media_dir`` holds the videos
    (key frames are left out where a video is missing)."""
    out = Path(out_dir)
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>AVSGS evaluation</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
        "img{max-width:100%}.frames img{height:200px;margin-right:8px}audio{width:210px}"
        ".legend span{padding:0 6px;color:#fff}</style></head><body>",
        "<h1>AVSGS evaluation</h1>",
        "<h2>Metrics (test pairs)</h2>",
        _table([(k, v) for k, v in metrics.items() if not isinstance(v, dict)]),
    ]
    if metrics.get("per_class"):
        rows = "".join(
            f"<tr><td>{html.escape(c)}</td><td>{v['sdr']}</td><td>{v['sdri']}</td><td>{v['n']}</td></tr>"
            for c, v in metrics["per_class"].items()
        )
        head = "<tr><th>class</th><th>SDR</th><th>SDRi</th><th>n</th></tr>"
        parts.append(f"<h3>Per class</h3><table>{head}{rows}</table>")
    if metrics.get("direction", {}).get("10"):
        parts.append(_direction_table(metrics["direction"]))
    if live_dir and curves(Path(live_dir), assets / "curves.png"):
        parts.append("<h2>Training</h2><img src='assets/curves.png' alt='training curves'>")
    parts.append(
        "<h2>Examples</h2><p class='legend'>Boxes: "
        "<span style='background:#e62828'>principal</span>"
        "<span style='background:#c8a000'>context</span><span style='background:#2878fa'>"
        "background crop</span> (on the key frame of each principal object)</p>"
    )
    for i, ex in enumerate(examples):
        parts += _example(i, ex, graphs, media_dir, assets)
    parts.append("</body></html>")
    page = out / "index.html"
    io.write_text(page, "\n".join(parts))
    return page
