"""Direction-of-motion accuracy (ASMP's second task, poster Table 2): each source's direction per
1 s window predicted from its **separated** audio, in both schemes (10 and 28 classes), on the
fixed test pairs.

A sample is one real slot's labelled window (the graph store's ``direction10`` /
``direction28``, ``graphs.motion.labels``): the log magnitude of the slot's separated waveform on
the separator's log-frequency grid, over the window's STFT columns. Figures per scheme:

- ``accuracy``: ASMP's own direction network (``source: head``, its scheme) or, for a separator
  without one (AVSGS, co-separation, ASMP's other scheme, and ASMP with ``direction_weight``
  0, whose network never learned), a **probe**: a
  :class:`~pipeline.separation.nn.DirectionHead` trained on the same separator's outputs on
  ``train_pairs`` seeded mixtures of train clips (``source: probe``), as the poster's Table 2 does
  for the baselines;
- ``majority``: always the train samples' most frequent class (the floor);
- ``clean``: a probe trained and tested on clean audio (the ceiling): clips with one real slot,
  whose audio is that source's stem (in the scenes world exactly; in real data, what the clip
  holds); ``clean_majority``: the majority vote on those windows (another set, another floor).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections import Counter
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline.evaluation.pairs import test_pairs
from pipeline.evaluation.separate import separate_pair
from pipeline.separation.spectrogram import SpecConfig, log_freq_magnitude, log_mag

log = logging.getLogger(__name__)
SCHEMES = (10, 28)
VAL_EVERY = 25  # probe steps per check on its held-out clips


@dataclasses.dataclass(frozen=True)
class DirectionParams:
    """``evaluate.direction``.

    Args:
        train_pairs: seeded mixtures of two train clips, separated to train each probe on.
        steps: the probes' Adam steps.
        batch_size: samples per probe step.
        lr: the probes' learning rate.
    """

    train_pairs: int = 48
    steps: int = 100
    batch_size: int = 64
    lr: float = 0.001

    def __post_init__(self) -> None:
        if self.train_pairs < 1 or self.steps < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("evaluate.direction: train_pairs, steps, batch_size >= 1, lr > 0")


class Samples:
    """Labelled windows: log-spectrograms ``(K, 1, F, cols)`` and their classes per scheme, with
    where each came from (``keys``: ``(tag, slot, window)``)."""

    def __init__(self):
        self.specs: list[torch.Tensor] = []
        self.targets: dict[int, list[int]] = {s: [] for s in SCHEMES}
        self.keys: list[tuple[Any, int, int]] = []

    def __len__(self) -> int:
        return len(self.keys)

    def add(
        self, graphs, clip_id: str, slot_wavs: np.ndarray, cfg: SpecConfig, tag: Any = None
    ) -> None:
        """The labelled windows of ``clip_id``'s real slots, cut from their waveforms
        ``slot_wavs (N', L)`` (row ``s``: slot ``s``); ``tag`` names them in ``keys`` (default
        the clip id)."""
        labels = {s: graphs.motion[f"direction{s}"][graphs.index[clip_id]] for s in SCHEMES}
        slots = [s for s in range(min(len(slot_wavs), labels[28].shape[0]))
                 if (labels[28][s] >= 0).any()]  # fmt: skip
        if not slots:
            return
        wav = torch.from_numpy(np.ascontiguousarray(slot_wavs[slots])).float()
        mag = log_mag(log_freq_magnitude(wav, cfg)[1])  # (n, 1, F, T)
        per_s = cfg.sample_rate / cfg.hop
        cols, frames = int(round(per_s)), mag.shape[-1]
        for i, s in enumerate(slots):
            for w in np.flatnonzero(labels[28][s] >= 0).tolist():
                c0 = int(round(w * per_s))
                if c0 + cols > frames:
                    break
                self.specs.append(mag[i, :, :, c0 : c0 + cols])
                for scheme in SCHEMES:
                    self.targets[scheme].append(int(labels[scheme][s, w]))
                self.keys.append((clip_id if tag is None else tag, s, w))

    def tensor(self) -> torch.Tensor:
        return torch.stack(self.specs)

    def target(self, scheme: int) -> torch.Tensor:
        return torch.tensor(self.targets[scheme], dtype=torch.int64)


def has_labels(graphs) -> bool:
    return graphs.motion is not None and bool((graphs.motion["direction28"] >= 0).any())


def per_slot(model, graphs) -> bool:
    """Whether the separator has an output per principal slot (rows ``0..N-1``)."""
    return int(getattr(model, "n_outputs", 0)) >= int(graphs.attrs["max_principal"])


@torch.no_grad()
def predict(net, specs: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Class predictions ``(K,)`` of a direction network in evaluation mode."""
    was = net.training
    net.eval()
    device = next(net.parameters()).device
    out = [
        net(specs[i : i + batch].to(device)).argmax(1).cpu() for i in range(0, len(specs), batch)
    ]
    net.train(was)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def train_probe(train: Samples, scheme: int, params: DirectionParams, seed: int, device):
    """A direction network trained on ``train``'s samples of ``scheme`` (seeded Adam), the state
    of best accuracy on a fifth of the clips held out (checked every ``VAL_EVERY`` steps): a
    probe is a measurement, so it must not fall below the prior by overfitting its few clips."""
    from pipeline.separation.nn.direction import DirectionHead

    torch.manual_seed(seed)
    net = DirectionHead(scheme, arch="small").to(device)
    opt = torch.optim.Adam(net.parameters(), lr=params.lr)
    x, y = train.tensor(), train.target(scheme)
    rng = np.random.default_rng([seed, scheme])
    clips = sorted({str(k[0]) for k in train.keys})
    held = set(rng.choice(clips, size=len(clips) // 5, replace=False).tolist())
    is_val = torch.tensor([str(k[0]) in held for k in train.keys])
    fit = np.flatnonzero(~is_val.numpy())
    size = min(params.batch_size, len(fit))
    best, best_acc = copy.deepcopy(net.state_dict()), -1.0
    net.train()
    for step in range(1, (params.steps if size >= 2 else 0) + 1):  # BatchNorm needs two
        pick = torch.from_numpy(rng.choice(fit, size=size, replace=False))
        loss = torch.nn.functional.cross_entropy(net(x[pick].to(device)), y[pick].to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if is_val.any() and (step % VAL_EVERY == 0 or step == params.steps):
            acc = float((predict(net, x[is_val]) == y[is_val]).float().mean())
            if acc > best_acc:
                best, best_acc = copy.deepcopy(net.state_dict()), acc
    if best_acc >= 0:
        net.load_state_dict(best)
    return net


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float | None:
    return round(float((pred == target).float().mean()), 4) if len(target) else None


def majority(train: Samples, test: Samples, scheme: int) -> tuple[int, float | None]:
    """The train samples' most frequent class and its accuracy on ``test``."""
    top = Counter(train.targets[scheme]).most_common(1)[0][0]
    return top, accuracy(torch.full((len(test),), top), test.target(scheme))


def separated_train_samples(model, graphs, audio, recipe, cfg, params, seed, batch) -> Samples:
    """Each real slot's separated windows on ``params.train_pairs`` seeded train mixtures."""
    names = graphs.label_names
    train = [c for c in graphs.ids("train") if c in audio]
    labels = {c: [names[v] for v in graphs.labels[graphs.index[c]] if v >= 0] for c in train}
    pairs = test_pairs(labels, params.train_pairs, seed + 1)  # other pairs than the test's stream
    out = Samples()
    for pair in tqdm(pairs, desc="direction probe data", unit="pair", mininterval=5):
        a, b = pair["clip_ids"]
        n = min(audio.length(a), audio.length(b))
        wav = np.stack([audio.read(a, 0, n), audio.read(b, 0, n)])
        sep = separate_pair(model, wav, [graphs.data(a), graphs.data(b)], recipe, cfg, batch)
        for side, cid in enumerate((a, b)):
            out.add(graphs, cid, sep["slots"][side], cfg)
    return out


def clean_samples(graphs, audio, split: str, cfg: SpecConfig) -> Samples:
    """The labelled windows of clips with one real slot, from the clip's own audio."""
    out = Samples()
    for cid in graphs.ids(split):
        if cid in audio and int((graphs.labels[graphs.index[cid]] >= 0).sum()) == 1:
            slot = int(np.flatnonzero(graphs.labels[graphs.index[cid]] >= 0)[0])
            wav = audio.read(cid, 0, audio.length(cid)).astype(np.float32)
            rows = np.zeros((slot + 1, len(wav)), np.float32)
            rows[slot] = wav
            out.add(graphs, cid, rows, cfg)
    return out


def direction_metrics(
    model, graphs, audio, test: Samples, recipe, cfg, params: DirectionParams, *, seed, batch
) -> tuple[dict[str, Any], dict[tuple[Any, int, int], dict[int, int]]]:
    """The ``direction`` metrics (see the module) and each test sample's predicted class per
    scheme (for the report)."""
    device = next(model.parameters()).device
    train = separated_train_samples(model, graphs, audio, recipe, cfg, params, seed, batch)
    if not len(train) or not len(test):
        return {"test_samples": len(test), "train_samples": len(train)}, {}
    clean_train, clean_test = (clean_samples(graphs, audio, s, cfg) for s in ("train", "test"))
    # ASMP's own network, unless its loss had no weight (then it never learned: a probe instead)
    trained = hasattr(model, "direction") and getattr(model, "direction_weight", 0) > 0
    own = model.directions if trained else None
    x = test.tensor()
    metrics: dict[str, Any] = {
        "test_samples": len(test),
        "train_samples": len(train),
        "clean_test_samples": len(clean_test),
    }
    predicted: dict[tuple[Any, int, int], dict[int, int]] = {k: {} for k in test.keys}
    for scheme in SCHEMES:
        if scheme == own:
            pred, source = predict(model.direction, x), "head"
        else:
            pred = predict(train_probe(train, scheme, params, seed, device), x)
            source = "probe"
        top, floor = majority(train, test, scheme)
        ceiling = clean_floor = None
        if len(clean_train) > 1 and len(clean_test):
            probe = train_probe(clean_train, scheme, params, seed, device)
            ceiling = accuracy(predict(probe, clean_test.tensor()), clean_test.target(scheme))
            clean_floor = majority(clean_train, clean_test, scheme)[1]
        metrics[str(scheme)] = {
            "accuracy": accuracy(pred, test.target(scheme)),
            "source": source,
            "majority": floor,
            "majority_class": top,
            "clean": ceiling,
            "clean_majority": clean_floor,
        }
        for key, p in zip(test.keys, pred.tolist(), strict=True):
            predicted[key][scheme] = p
    return metrics, predicted
