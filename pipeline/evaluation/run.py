"""The evaluate stage: score the trained separator on the fixed test pairs, beside the mixture
baseline and the ideal-mask ceilings; on the synthetic world also inside single clips."""

from __future__ import annotations

import dataclasses
import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from pipeline import io
from pipeline.device import resolve_device
from pipeline.errors import PipelineError
from pipeline.evaluation import directions
from pipeline.evaluation.directions import DirectionParams
from pipeline.evaluation.pairs import test_pairs
from pipeline.evaluation.separate import separate_clip, separate_pair
from pipeline.graphs.store import GraphStore
from pipeline.separation.audio_store import AudioStore
from pipeline.separation.bss import Unscorable, bss_eval, oracle_estimates
from pipeline.separation.model import load_separator
from pipeline.separation.spectrogram import SpecConfig, istft, stft, to_linear_freq, to_log_freq
from pipeline.separation.step import RECIPES

log = logging.getLogger(__name__)
SCORES = ("sdr", "sir", "sar")


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    """``evaluate``.

    Args:
        n_pairs: test pairs (two test clips with no class in common), drawn once, seeded.
        batch_size: windows per forward pass.
        within_clip: on the synthetic world, also separate the sources inside each test clip
            that has two (scored against its stems).
        report_examples: pairs shown in the HTML report.
        threads: torch CPU threads.
        direction: direction-of-motion accuracy (:mod:`pipeline.evaluation.directions`), when
            the graph store has motion labels and the separator an output per slot.
    """

    n_pairs: int
    batch_size: int
    within_clip: bool
    report_examples: int
    threads: int
    direction: DirectionParams = DirectionParams()

    def __post_init__(self) -> None:
        if self.n_pairs < 1 or self.batch_size < 1 or self.threads < 1 or self.report_examples < 0:
            raise ValueError("n_pairs, batch_size, threads must be >= 1; report_examples >= 0")


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant SDR (dB) of one estimate; only used to pick an assignment."""
    alpha = (est @ ref) / max(ref @ ref, 1e-12)
    target = alpha * ref
    return float(
        10 * np.log10(max(target @ target, 1e-12) / max((est - target) @ (est - target), 1e-12))
    )


def log_grid_oracle(refs: np.ndarray, cfg: SpecConfig) -> dict[str, np.ndarray]:
    """The ideal binary and ratio masks as the separator can express them: computed on the
    ``log_bins``-row log-frequency grid that its masks live on, then resampled back to the linear
    STFT (the mixture's phase). ``ibm`` and ``irm`` ``(n_src, samples)``."""
    spec = stft(torch.from_numpy(refs).double(), cfg)  # (n_src, F, T)
    mag = to_log_freq(spec.abs()[:, None], cfg)  # (n_src, 1, log_bins, T)
    masks = {
        "ibm": (mag == mag.max(0, keepdim=True).values).double(),
        "irm": mag / mag.sum(0, keepdim=True).clamp_min(1e-12),
    }
    mix, n = spec.sum(0, keepdim=True), refs.shape[1]
    return {k: istft(mix * to_linear_freq(m, cfg)[:, 0], cfg, n).numpy() for k, m in masks.items()}


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 3) if values else None


def evaluate_all(
    model_path: str | Path,
    graphs_path: str | Path,
    audio_path: str | Path,
    params: EvaluateParams,
    *,
    seed: int,
    stems_dir: str | Path | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Score every pair; returns ``pairs`` (the fixed list), ``rows`` (per pair), ``metrics``,
    ``examples`` (separated audio of the first ``report_examples`` scored pairs). ``device``:
    ``base.device``."""
    torch.set_num_threads(params.threads)
    model, meta = load_separator(model_path)
    model.to(resolve_device(device))
    recipe, cfg = RECIPES[meta["recipe"]], SpecConfig(**meta["spec"])
    graphs, audio = GraphStore(graphs_path), AudioStore(audio_path)
    if graphs.label_names != meta["label_names"]:
        raise PipelineError(
            f"{model_path} was trained on classes {meta['label_names']}, {graphs_path} has "
            f"{graphs.label_names}; rerun `dvc repro train`"
        )
    names = graphs.label_names
    test = [c for c in graphs.ids("test") if c in audio]
    labels = {c: [names[v] for v in graphs.labels[graphs.index[c]] if v >= 0] for c in test}
    pairs = test_pairs(labels, params.n_pairs, seed)
    if not pairs:
        raise PipelineError(
            f"no two test clips without a class in common among {len(test)} test clips"
        )
    rows, examples, tally = [], [], Tally()
    motion = directions.has_labels(graphs) and directions.per_slot(model, graphs)
    test_windows = directions.Samples()
    for pair in tqdm(pairs, desc="evaluate", unit="pair", mininterval=5):
        row, out, scores = score_pair(model, graphs, audio, pair, recipe, cfg, params.batch_size)
        rows.append(row)
        if scores is None:
            log.warning("evaluate: pair %d (%s, %s) skipped: %s", *pair_names(row), row["reason"])
            continue
        tally.add(scores, pair["labels"])
        if motion:
            for side, cid in enumerate(pair["clip_ids"]):
                test_windows.add(graphs, cid, out["slots"][side], cfg, tag=(pair["pair"], side))
        if len(examples) < params.report_examples:
            examples.append({"pair": pair, "row": row, **out, "rate": cfg.sample_rate})
    if not tally.values["sdr"]:
        raise PipelineError(f"evaluate: none of the {len(pairs)} pairs could be scored")
    metrics = {
        **tally.metrics(len(pairs)),
        "recipe": meta["recipe"],
        "model": meta["name"],
    }
    if params.within_clip and stems_dir is not None and Path(stems_dir).is_dir():
        metrics.update(within_clip(model, graphs, test, Path(stems_dir), recipe, cfg, params))
    if motion:
        metrics["direction"], predicted = directions.direction_metrics(
            model, graphs, audio, test_windows, recipe, cfg, params.direction,
            seed=seed, batch=params.batch_size,
        )  # fmt: skip
        for ex in examples:
            ex["directions"] = example_directions(ex["pair"], test_windows, predicted)
    return {"pairs": pairs, "rows": rows, "metrics": metrics, "examples": examples}


def example_directions(pair, samples, predicted) -> list[dict[str, Any]]:
    """A report example's windows: ``side``, ``slot``, ``window`` and the true and predicted
    class in each scheme."""
    out = []
    for i, key in enumerate(samples.keys):
        if key[0][0] == pair["pair"] and key in predicted:
            row = {"side": key[0][1], "slot": key[1], "window": key[2]}
            for scheme in directions.SCHEMES:
                row[f"true{scheme}"] = samples.targets[scheme][i]
                row[f"pred{scheme}"] = predicted[key].get(scheme)
            out.append(row)
    return out


def pair_names(row: dict[str, Any]) -> tuple[int, str, str]:
    return row["pair"], row["clip_a"], row["clip_b"]


def score_pair(model, graphs, audio, pair, recipe, cfg, batch_size: int):
    """Separate one test pair's mixture and score it beside the mixture itself and the ideal
    masks (on the linear STFT and on the separator's log-frequency grid). Returns the pair's row
    (``status`` ``ok``, or ``skipped`` with the ``reason``), the separated audio and the SDR,
    SIR and SAR of each video (``sdr`` ...) with the references' SDRs (``mix``, ``ibm`` ...), or
    ``None`` twice for a skipped pair."""
    a, b = pair["clip_ids"]
    n = min(audio.length(a), audio.length(b))
    wav = np.stack([audio.read(a, 0, n), audio.read(b, 0, n)])
    row: dict[str, Any] = {
        "pair": pair["pair"],
        "clip_a": a,
        "clip_b": b,
        "labels_a": "+".join(pair["labels"][0]),
        "labels_b": "+".join(pair["labels"][1]),
    }
    permute = model.permutation_invariant  # audio_only: the better assignment
    try:
        out = separate_pair(model, wav, [graphs.data(a), graphs.data(b)], recipe, cfg, batch_size)
        refs = out["parts"]
        est = bss_eval(refs, out["video"], permute=permute)
        if permute:  # the estimates in the order of the references they were scored with
            out = {**out, "video": out["video"][est["order"]], "slots": out["slots"][est["order"]]}
        oracle, grid = oracle_estimates(refs, cfg), log_grid_oracle(refs, cfg)
        references = {
            "mix": np.stack([out["mix"], out["mix"]]),
            "ibm": oracle["ibm"],
            "irm": oracle["irm"],
            "ibm_log": grid["ibm"],
            "irm_log": grid["irm"],
        }
        scores = {k: [float(x) for x in est[k]] for k in SCORES}
        for name, estimate in references.items():
            scores[name] = [float(x) for x in bss_eval(refs, estimate)["sdr"]]
    except Unscorable as err:
        return {**row, "status": "skipped", "reason": str(err)}, None, None
    for i, side in enumerate("ab"):
        for name in (*SCORES, "mix", "ibm", "irm"):  # the CSV's columns
            row[f"{COLUMN.get(name, name)}_{side}"] = round(scores[name][i], 4)
    return {**row, "status": "ok", "reason": ""}, out, scores


# the column of a reference's SDR in a pair's row (the log-grid ones are not in the CSV)
COLUMN = {"mix": "sdr_mixture", "ibm": "ibm_sdr", "irm": "irm_sdr"}
REFERENCES = ("mix", "ibm", "irm", "ibm_log", "irm_log")


class Tally:
    """The scored pairs' figures, per video and per class, and their means."""

    def __init__(self):
        self.values: dict[str, list[float]] = {k: [] for k in (*SCORES, *REFERENCES)}
        self.per_class: dict[str, dict[str, list[float]]] = {}

    def add(self, scores: dict[str, list[float]], labels: list[list[str]]) -> None:
        """One pair's figures (:func:`score_pair`) and its two videos' classes."""
        for k, values in scores.items():
            self.values[k].extend(values)
        for i in range(2):
            for cls in labels[i]:
                c = self.per_class.setdefault(cls, {"sdr": [], "sdri": []})
                c["sdr"].append(scores["sdr"][i])
                c["sdri"].append(scores["sdr"][i] - scores["mix"][i])

    def metrics(self, n_pairs: int) -> dict[str, Any]:
        v = self.values
        sdr, mixture = np.array(v["sdr"]), np.array(v["mix"])
        return {
            "sdr": _mean(v["sdr"]),
            "sir": _mean(v["sir"]),
            "sar": _mean(v["sar"]),
            "sdr_median": round(float(np.median(sdr)), 3),
            "sdr_mixture": _mean(v["mix"]),
            "sdri": round(float(np.mean(sdr - mixture)), 3),
            "oracle_ibm_sdr": _mean(v["ibm"]),
            "oracle_irm_sdr": _mean(v["irm"]),
            "oracle_ibm_sdr_log_grid": _mean(v["ibm_log"]),
            "oracle_irm_sdr_log_grid": _mean(v["irm_log"]),
            "n_pairs": len(v["sdr"]) // 2,
            "skipped": n_pairs - len(v["sdr"]) // 2,
            "per_class": {
                c: {"sdr": _mean(x["sdr"]), "sdri": _mean(x["sdri"]), "n": len(x["sdr"])}
                for c, x in sorted(self.per_class.items())
            },
        }


def clip_estimates(
    model, graphs, clip_id: str, stems_dir: Path, recipe, cfg, batch: int = 8
) -> tuple[np.ndarray, np.ndarray] | None:
    """A synthetic clip's stems ``(n_src, L)``, scaled as a part of a training mixture, and the
    model's outputs ``(S, L)`` separating their sum by the clip's own graph; None for a clip
    without a stems file or with fewer than two sources."""
    path = stems_dir / f"{clip_id}.wav"
    if not path.is_file():
        return None
    stems, _ = sf.read(path, dtype="float32", always_2d=True)
    if stems.shape[1] < 2:
        return None
    refs = stems.T.astype(np.float64) * (0.5 if recipe.mixture == "mean" else 1.0)
    mix = refs.sum(0).astype(np.float32)
    return refs, separate_clip(model, mix, graphs.data(clip_id), recipe, cfg, batch)


def within_clip(model, graphs, clip_ids, stems_dir: Path, recipe, cfg, params) -> dict[str, Any]:
    """Separate each two-source test clip's own audio (the sum of its stems) and score the best
    assignment of its stems to the model's outputs (chosen by SI-SDR, scored by BSS eval); also
    apart for clips whose two sources share a class (only their context tells them apart) and
    clips whose sources differ."""
    sdr, sdr_mix, skipped = [], [], 0
    by_kind: dict[str, list[float]] = {"one_class": [], "two_classes": []}
    for cid in tqdm(clip_ids, desc="within-clip", unit="clip", mininterval=5):
        got = clip_estimates(model, graphs, cid, stems_dir, recipe, cfg, params.batch_size)
        if got is None:
            continue
        refs, outs = got
        mix = refs.sum(0)
        if len(outs) < len(refs):  # a separator with one output per video (frame, audio_only)
            return {"within_clip_clips": 0}
        best = max(
            itertools.permutations(range(len(outs)), len(refs)),
            key=lambda p: sum(si_sdr(r, outs[j]) for r, j in zip(refs, p, strict=True)),
        )
        try:
            scores = bss_eval(refs, outs[list(best)])["sdr"]
            sdr_mix.extend(bss_eval(refs, np.stack([mix] * len(refs)))["sdr"])
        except Unscorable:
            skipped += 1
            continue
        sdr.extend(scores)
        labels = [int(v) for v in graphs.labels[graphs.index[cid]] if v >= 0]
        by_kind["one_class" if len(set(labels)) < len(labels) else "two_classes"].extend(scores)
    if not sdr:
        return {"within_clip_clips": 0}
    out = {
        "sdr_within_clip": _mean(sdr),
        "sdr_within_clip_mixture": _mean(sdr_mix),
        "within_clip_clips": len(sdr) // 2,
        "within_clip_skipped": skipped,
    }
    for kind, values in by_kind.items():
        if values:
            out[f"sdr_within_clip_{kind}"] = _mean(values)
            out[f"within_clip_{kind}_clips"] = len(values) // 2
    return out


def write_outputs(result: dict[str, Any], pairs_out, scores_out) -> None:
    """The pair list (JSON) and the per-pair scores (CSV)."""
    io.write_json(pairs_out, result["pairs"])
    fields = ["pair", "clip_a", "clip_b", "labels_a", "labels_b", "status", "reason"]
    for side in "ab":
        fields += [f"{k}_{side}" for k in SCORES]
        fields += [f"sdr_mixture_{side}", f"ibm_sdr_{side}", f"irm_sdr_{side}"]
    io.write_csv(scores_out, [{f: r.get(f, "") for f in fields} for r in result["rows"]], fields)
