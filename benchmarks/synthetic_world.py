"""How distinct the synthetic world's sounds are, and the floor and ceiling of separating them.

1. Class distinctness: a logistic-regression classifier on log-mel statistics (mean and std over
   time of 64 log-mel bands) of 10 s stems, trained on melodies from some seeds and tested on
   held-out melodies (other seeds).
2. Two-source mixtures: stems of two different classes summed; mir_eval's bss_eval_sources SDR of
   the mixture itself as the estimate (the floor), and of the ideal binary and ratio masks on the
   model's STFT (1022 / 256 at 11,025 Hz; the ceilings), on 6 s windows as the separator sees them.

Usage: ``uv run python benchmarks/synthetic_world.py [--flavour everyday|instruments|both]``
Prints one table per flavour; the figures are recorded in docs/synthetic-world.md.
"""

from __future__ import annotations

import argparse
import itertools
import time

import librosa
import mir_eval
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavour", default="both", choices=["both", *FLAVOURS])
    parser.add_argument("--n-train", type=int, default=12)
    parser.add_argument("--n-test", type=int, default=6)
    parser.add_argument("--pairs", type=int, default=24)
    args = parser.parse_args()
    for flavour in FLAVOURS if args.flavour == "both" else [args.flavour]:
        run(flavour, args.n_train, args.n_test, args.pairs)
