"""Scoring: pair lists, BSS eval edges (perfect, mixture, swapped, silent), overlap-add, and the
evaluate driver end to end on tone clips with a briefly trained tiny model."""

import numpy as np
import pytest

from pipeline.evaluation.pairs import test_pairs as draw_pairs
from pipeline.evaluation.run import EvaluateParams, evaluate_all, log_grid_oracle, write_outputs
from pipeline.evaluation.separate import fade, overlap_add, window_starts
from pipeline.separation.bss import Unscorable, bss_eval, oracle_estimates
from pipeline.separation.spectrogram import SpecConfig

RATE = 11025


def tones(n=RATE * 2):
    t = np.arange(n) / RATE
    a = np.sin(2 * np.pi * 220 * t) * (1 + 0.3 * np.sin(2 * np.pi * 1.3 * t))
    b = 0.7 * np.sin(2 * np.pi * 1500 * t + 1) * (1 + 0.3 * np.sin(2 * np.pi * 0.7 * t))
    return np.stack([a, b])


def test_pair_lists_are_fixed_by_the_seed():
    labels = {f"c{i}": [["bell"], ["birds"], ["bell", "man"], ["water"]][i % 4] for i in range(12)}
    one, two = draw_pairs(labels, 10, seed=0), draw_pairs(labels, 10, seed=0)
    assert one == two and len(one) == 10
    assert [p["pair"] for p in one] == list(range(10))
    for p in one:
        a, b = p["clip_ids"]
        assert a < b and not set(labels[a]) & set(labels[b])
    assert draw_pairs(labels, 10, seed=1) != one
    assert len(draw_pairs(labels, 10_000, seed=0)) == 45  # every disjoint pair (5 x 3 x 3), no more


def test_perfect_mixture_swapped_and_oracle_scores():
    refs = tones()
    mix = refs.sum(0)
    perfect = bss_eval(refs, refs)
    mixture = bss_eval(refs, np.stack([mix, mix]))
    swapped = bss_eval(refs, refs[::-1].copy())
    assert (perfect["sdr"] > 60).all()
    assert (mixture["sdr"] < 10).all() and (mixture["sdr"] > -10).all()
    assert (swapped["sdr"] < mixture["sdr"]).all()  # no permutation search: a swap is caught
    oracle = oracle_estimates(refs, SpecConfig())
    ibm, irm = bss_eval(refs, oracle["ibm"]), bss_eval(refs, oracle["irm"])
    # far-apart tones barely overlap in time-frequency: the ideal masks nearly reach the signals
    assert (ibm["sdr"] > 15).all() and (irm["sdr"] > 15).all()
    assert (ibm["sdr"] > mixture["sdr"] + 10).all() and (perfect["sdr"] > ibm["sdr"]).all()


def test_log_grid_ceiling_loses_what_the_grid_cannot_resolve():
    # far-apart tones: the log-frequency grid resolves them too
    refs = tones()
    grid = log_grid_oracle(refs, SpecConfig())
    assert (bss_eval(refs, grid["ibm"])["sdr"] > 15).all()
    # 5,000 and 5,080 Hz: 7 linear bins apart, less than one row (11 bins there) of the log grid
    t = np.arange(RATE * 2) / RATE
    close = np.stack([np.sin(2 * np.pi * 5000 * t), 0.8 * np.sin(2 * np.pi * 5080 * t + 1)])
    linear = bss_eval(close, oracle_estimates(close, SpecConfig())["ibm"])["sdr"]
    logged = bss_eval(close, log_grid_oracle(close, SpecConfig())["ibm"])["sdr"]
    assert (linear > 25).all() and (logged < linear - 10).all()


def test_unscorable_references():
    refs = tones()
    silent = refs.copy()
    silent[1] = 0
    with pytest.raises(Unscorable, match="silent reference: source 1"):
        bss_eval(silent, refs)
    with pytest.raises(Unscorable, match="too short"):
        bss_eval(refs[:, :100], refs[:, :100])
    with pytest.raises(ValueError, match=r"\(n_src, samples\)"):
        bss_eval(refs, refs[:1])


@pytest.mark.parametrize("length", [1000, 65535, 65536, 110250, 200001])
def test_overlap_add_rebuilds_exact_windows(length):
    window = 65535
    signal = np.random.default_rng(length).normal(size=(2, length))
    starts = window_starts(length, window, window // 2)
    assert starts[0] == 0 and (length <= window or starts[-1] == length - window)
    assert all(b - a <= window // 2 for a, b in zip(starts, starts[1:], strict=False))
    chunks = np.zeros((len(starts), 2, window))
    for i, s in enumerate(starts):
        piece = signal[:, s : s + window]
        chunks[i, :, : piece.shape[1]] = piece
    np.testing.assert_allclose(
        overlap_add(chunks, starts, length, fade(window, window // 4)), signal
    )


def test_evaluate_end_to_end(trained, tmp_path):
    params = EvaluateParams(
        n_pairs=20, batch_size=4, within_clip=True, report_examples=2, threads=1
    )
    root = trained

    def run():
        return evaluate_all(
            root / "model.pt",
            root / "graphs.h5",
            root / "audio.h5",
            params,
            seed=0,
            stems_dir=root / "stems",
        )

    result = run()
    m = result["metrics"]
    assert set(m) >= {
        "sdr",
        "sir",
        "sar",
        "sdr_median",
        "sdr_mixture",
        "sdri",
        "oracle_ibm_sdr",
        "oracle_irm_sdr",
        "oracle_ibm_sdr_log_grid",
        "oracle_irm_sdr_log_grid",
        "n_pairs",
        "per_class",
        "sdr_within_clip",
    }
    assert m["oracle_ibm_sdr"] > m["sdr_mixture"] and m["oracle_irm_sdr"] > m["sdr_mixture"]
    assert m["oracle_ibm_sdr"] >= m["oracle_ibm_sdr_log_grid"] > m["sdr_mixture"]
    # test clips 8..13; pairs with the silent clip13 are recorded and skipped
    silent = [r for r in result["rows"] if "clip13" in (r["clip_a"], r["clip_b"])]
    assert silent and all(r["status"] == "skipped" and "silent" in r["reason"] for r in silent)
    assert m["n_pairs"] + m["skipped"] == len(result["pairs"]) and m["skipped"] == len(silent)
    assert m["within_clip_clips"] >= 1
    kinds = [m.get(f"within_clip_{k}_clips", 0) for k in ("one_class", "two_classes")]
    assert sum(kinds) == m["within_clip_clips"]
    assert len(result["examples"]) == 2
    assert run()["pairs"] == result["pairs"]
    write_outputs(result, tmp_path / "pairs.json", tmp_path / "scores.csv")
    header = (tmp_path / "scores.csv").read_text().splitlines()[0].split(",")
    assert {"sdr_a", "sir_b", "sar_a", "sdr_mixture_b", "ibm_sdr_a", "status", "reason"} <= set(
        header
    )
