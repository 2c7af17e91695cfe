"""How distinct the synthetic world's sounds are, and the floor and ceiling of separating them.

For the ``everyday`` and ``instruments`` flavours (``--flavour``), from freshly rendered stems:

1. Class distinctness: a logistic-regression classifier on log-mel statistics (mean and std over
   time of 64 log-mel bands) of 10 s stems, trained on melodies from some seeds and tested on
   held-out melodies (other seeds).
2. Two-source mixtures: stems of two different classes summed; mir_eval's bss_eval_sources SDR of
   the mixture itself as the estimate (the floor), and of the ideal binary and ratio masks on the
   model's STFT (1022 / 256 at 11,025 Hz; the ceilings), on 6 s windows as the separator sees them.

For the ``scenes`` flavour (``--scenes``), from a generated world and the graphs built on it (the
default ``dvc repro``'s ``data/source`` and ``data/graphs/graphs.h5``):

3. Variant probe: a logistic regression naming each sounding object's variant (its partner) from
   the detector feature of its principal node alone, from that and the mean of its context nodes,
   and from that and the context node on its true partner; trained on the train split's graphs,
   scored on the val and test splits, beside the majority variant.
4. Ceilings: the mixture's SDR and the ideal binary / ratio masks' (10 s, the model's STFT), for
   two clips summed (across clips) and inside each two-source clip, split by whether its two
   sources share a class.
5. Direction from audio: a logistic regression naming each sounding object's motion in depth in
   each 1-second window (approaching ``d <= -0.3``, receding ``d >= 0.3``, else steady) from its
   stem's loudness (:func:`level_features`), trained on the train split's windows, scored on the
   others': accuracy beside the majority class, and, class-weighted, the mean recall over the
   three classes beside chance.

Usage::

    uv run python benchmarks/synthetic_world.py [--flavour everyday|instruments|both]
    uv run python benchmarks/synthetic_world.py --scenes [--world data/source]
        [--graphs data/graphs/graphs.h5]

Prints one table per flavour; the figures are recorded in docs/synthetic-world.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import librosa
import mir_eval
import numpy as np
import soundfile as sf
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from pipeline.graphs.build import box_iou
from pipeline.graphs.roles import Role
from pipeline.graphs.store import GraphStore
from pipeline.motion import STATIC_D
from pipeline.scenes_truth import frame_at, source_at, xyxy
from pipeline.sources.synthetic.audio import render_stem
from pipeline.sources.synthetic.classes import FLAVOURS

SR = 11025
N_FFT, HOP = 1022, 256


def features(x: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=64)
    logmel = np.log(mel + 1e-6)
    return np.concatenate([logmel.mean(axis=1), logmel.std(axis=1)])


def stems_of(flavour: str, seeds) -> dict[str, list[np.ndarray]]:
    world = FLAVOURS[flavour]
    return {
        name: [render_stem(c.sound, np.random.default_rng([1000, s, i]), 10.0, SR) for s in seeds]
        for i, (name, c) in enumerate(sorted(world.items()))
    }


def classify(train, test) -> float:
    names = sorted(train)
    xtr = np.array([features(x) for n in names for x in train[n]])
    ytr = np.array([i for i, n in enumerate(names) for _ in train[n]])
    xte = np.array([features(x) for n in names for x in test[n]])
    yte = np.array([i for i, n in enumerate(names) for _ in test[n]])
    scaler = StandardScaler().fit(xtr)
    clf = LogisticRegression(max_iter=2000).fit(scaler.transform(xtr), ytr)
    return float((clf.predict(scaler.transform(xte)) == yte).mean())


def mask_sdrs(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """SDR of the mixture and of the ideal binary and ratio masks, two sources ``a``, ``b``."""
    refs = np.stack([a, b])
    mix = a + b
    spec = [librosa.stft(s, n_fft=N_FFT, hop_length=HOP) for s in (a, b, mix)]
    mags = np.abs(np.stack(spec[:2]))
    ibm = (mags == mags.max(axis=0, keepdims=True)).astype(np.float32)
    irm = mags / np.maximum(mags.sum(axis=0, keepdims=True), 1e-8)
    out = {}
    for name, est in (
        ("mixture", np.stack([mix, mix])),
        ("ibm", np.stack([librosa.istft(m * spec[2], hop_length=HOP, length=len(a)) for m in ibm])),
        ("irm", np.stack([librosa.istft(m * spec[2], hop_length=HOP, length=len(a)) for m in irm])),
    ):
        sdr, _, _, _ = mir_eval.separation.bss_eval_sources(refs, est, compute_permutation=False)
        out[name] = float(sdr.mean())
    return out


def run(flavour: str, n_train: int, n_test: int, n_pairs: int) -> None:
    t0 = time.perf_counter()
    train = stems_of(flavour, range(n_train))
    test = stems_of(flavour, range(100, 100 + n_test))
    acc = classify(train, test)
    names = sorted(test)
    pairs = list(itertools.combinations(names, 2))
    rng = np.random.default_rng(0)
    chosen = [
        pairs[i] for i in rng.choice(len(pairs), size=min(n_pairs, len(pairs)), replace=False)
    ]
    window = 6 * SR
    scores = {"mixture": [], "ibm": [], "irm": []}
    for k, (a, b) in enumerate(chosen):
        sa, sb = test[a][k % n_test][:window], test[b][(k + 1) % n_test][:window]
        for key, value in mask_sdrs(sa, sb).items():
            scores[key].append(value)
    print(f"\n## {flavour}: {len(names)} classes")
    print(
        f"classifier accuracy on held-out melodies ({n_train} train / {n_test} test per class): "
        f"{acc:.1%}"
    )
    print(f"two-source mixtures ({len(chosen)} pairs, 6 s): SDR mean / median [dB]")
    for key, values in scores.items():
        print(f"  {key:8s} {np.mean(values):6.2f} / {np.median(values):6.2f}")
    print(f"({time.perf_counter() - t0:.0f} s)")


def fit_score(x, y, train, balanced: bool = False) -> tuple[float, float]:
    """(held-out accuracy of a standardised logistic regression, of the majority class); with
    ``balanced``, classes weighted by their inverse frequency, and the first figure is the mean
    recall over classes (balanced accuracy; chance: one over the classes)."""
    scaler = StandardScaler().fit(x[train])
    weight = "balanced" if balanced else None
    clf = LogisticRegression(max_iter=5000, C=0.5, class_weight=weight)
    pred = clf.fit(scaler.transform(x[train]), y[train]).predict(scaler.transform(x[~train]))
    hit = pred == y[~train]
    acc = float(np.mean([hit[y[~train] == c].mean() for c in np.unique(y[~train])]))
    values, counts = np.unique(y[train], return_counts=True)
    return acc if balanced else float(hit.mean()), float(
        (y[~train] == values[np.argmax(counts)]).mean()
    )


def variant_examples(world: dict, world_dir: Path, store: GraphStore):
    """Per principal node matched to a sounding object: (principal feature, mean context
    feature, feature of the context node on its partner, variant, split)."""
    rows = []
    fps = world["fps"]
    for clip in world["clips"]:
        if clip["clip_id"] not in store.index:
            continue
        g = store.read(clip["clip_id"])
        truth = np.load(world_dir / "truth" / f"{clip['clip_id']}.npz")
        for i in np.flatnonzero(g["role"] == Role.PRINCIPAL):
            source = source_at(clip, truth, g["box"][i], float(g["time"][i]), fps)
            if source is None:
                continue
            ctx = np.flatnonzero((g["role"] == Role.CONTEXT) & (g["slot"] == g["slot"][i]))
            x = g["x"].astype(np.float32)
            mean_ctx = x[ctx].mean(0) if len(ctx) else np.zeros_like(x[i])
            partner = np.zeros_like(x[i])
            pb = truth["box"][source["partner_track"], frame_at(truth, float(g["time"][i]), fps)]
            if len(ctx) and not np.isnan(pb[0]):
                ious = box_iou(g["box"][ctx], xyxy(pb)[None])[:, 0]
                if ious.max() >= 0.5:
                    partner = x[ctx[int(np.argmax(ious))]]
            rows.append((x[i], mean_ctx, partner, source["variant"], clip["split"]))
    return rows


def stems_of_clip(world_dir: Path, clip_id: str) -> np.ndarray:
    stems, _ = sf.read(world_dir / "stems" / f"{clip_id}.wav", dtype="float32", always_2d=True)
    return stems.T


def level_features(stem: np.ndarray, windows: int) -> np.ndarray:
    """Per 1-second window of a stem, from its frame level in dB: the slope of a line fitted over
    the window (dB/s), the median level of its second half minus its first half's, and the level
    at its end minus at its start (medians over 0.5 s around each edge)."""
    rms = librosa.feature.rms(y=stem, frame_length=1024, hop_length=HOP, center=False)[0]
    db = 20 * np.log10(rms + 1e-4)
    per = SR / HOP
    edges = [np.median(db[max(0, int(w * per) - 11) : int(w * per) + 11]) for w in range(windows)]
    out = []
    for w in range(windows):
        seg = db[int(w * per) : int((w + 1) * per)]
        slope = np.polyfit(np.arange(len(seg)) / per, seg, 1)[0]
        half = np.median(seg[len(seg) // 2 :]) - np.median(seg[: len(seg) // 2])
        end = np.median(db[int((w + 1) * per) - 11 : int((w + 1) * per) + 11])
        out.append([slope, half, end - edges[w]])
    return np.array(out)


def run_scenes(world_dir: Path, graphs: Path) -> None:
    t0 = time.perf_counter()
    world = json.loads((world_dir / "world.json").read_text())
    if world.get("flavour") != "scenes":
        raise SystemExit(f"{world_dir}: a {world.get('flavour')} world; generate a scenes one")
    print(f"\n## scenes: {len(world['clips'])} clips, {world_dir}")

    if graphs.is_file():
        rows = variant_examples(world, world_dir, GraphStore(graphs))
        y = np.array([r[3] for r in rows])
        train = np.array([r[4] == "train" for r in rows])
        print(f"variant probe ({train.sum()} train / {(~train).sum()} held-out principal nodes):")
        for name, cols in (
            ("principal alone", lambda r: r[0]),
            ("principal + mean of its context", lambda r: np.concatenate([r[0], r[1]])),
            ("principal + its partner's node", lambda r: np.concatenate([r[0], r[2]])),
        ):
            acc, majority = fit_score(np.array([cols(r) for r in rows]), y, train)
            print(f"  {name:34s} {acc:6.1%}   (majority variant {majority:.1%})")
    else:
        print(f"variant probe: {graphs} not found (run dvc repro first)")

    window = int(world["seconds"] * SR)
    pairs = {"across clips": [], "within clip, two classes": [], "within clip, one class": []}
    clips = world["clips"]
    for clip in clips:
        if len(clip["sources"]) == 2:
            st = stems_of_clip(world_dir, clip["clip_id"])
            same = clip["sources"][0]["class"] == clip["sources"][1]["class"]
            key = "within clip, one class" if same else "within clip, two classes"
            pairs[key].append(mask_sdrs(st[0][:window], st[1][:window]))
    rng = np.random.default_rng(0)
    for _ in range(40):
        a, b = rng.choice(len(clips), 2, replace=False)
        ca, cb = clips[a], clips[b]
        if {s["class"] for s in ca["sources"]} & {s["class"] for s in cb["sources"]}:
            continue
        sa = stems_of_clip(world_dir, ca["clip_id"]).sum(0)[:window]
        sb = stems_of_clip(world_dir, cb["clip_id"]).sum(0)[:window]
        pairs["across clips"].append(mask_sdrs(sa, sb))
    print("SDR of the mixture / ideal binary mask / ideal ratio mask, mean dB:")
    for key, scores in pairs.items():
        if scores:
            m = {k: np.mean([s[k] for s in scores]) for k in ("mixture", "ibm", "irm")}
            print(
                f"  {key:26s} {m['mixture']:6.2f} / {m['ibm']:6.2f} / {m['irm']:6.2f}"
                f"   ({len(scores)} pairs)"
            )

    feats, labels, train = [], [], []
    for clip in clips:
        st = stems_of_clip(world_dir, clip["clip_id"])
        truth = np.load(world_dir / "truth" / f"{clip['clip_id']}.npz")
        for s in clip["sources"]:
            d = truth["displacement"][s["track"], :, 2]
            f = level_features(st[s["stem_channel"]], len(d))
            for w in range(len(d)):
                feats.append(f[w])
                labels.append("approaching" if d[w] <= -STATIC_D else
                              "receding" if d[w] >= STATIC_D else "steady")  # fmt: skip
                train.append(clip["split"] == "train")
    y, train, x = np.array(labels), np.array(train), np.array(feats)
    acc, majority = fit_score(x, y, train)
    balanced, _ = fit_score(x, y, train, balanced=True)
    shares = {c: f"{(y == c).mean():.0%}" for c in ("approaching", "steady", "receding")}
    print(
        f"direction in depth from the stem's level ({train.sum()} train / {(~train).sum()} "
        f"held-out windows, {shares}): accuracy {acc:.1%} (majority {majority:.1%}); "
        f"class-weighted, mean recall {balanced:.1%} (chance 33.3%)"
    )
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    flat = [f for f in FLAVOURS if f != "scenes"]
    parser.add_argument("--flavour", default="both", choices=["both", *flat])
    parser.add_argument("--n-train", type=int, default=12)
    parser.add_argument("--n-test", type=int, default=6)
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--scenes", action="store_true", help="probe a generated scenes world")
    parser.add_argument("--world", type=Path, default=Path("data/source"))
    parser.add_argument("--graphs", type=Path, default=Path("data/graphs/graphs.h5"))
    args = parser.parse_args()
    if args.scenes:
        run_scenes(args.world, args.graphs)
        raise SystemExit(0)
    for flavour in flat if args.flavour == "both" else [args.flavour]:
        run(flavour, args.n_train, args.n_test, args.pairs)
