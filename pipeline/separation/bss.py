"""BSS-eval scores (mir_eval), the mixture baseline, and the ideal-mask ceilings.

Shapes: references and estimates ``(n_src, samples)`` float64.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import torch

from pipeline.separation.spectrogram import SpecConfig, istft, stft


class Unscorable(ValueError):
    """A pair BSS eval cannot score (a silent or too short reference); carries the reason."""


def bss_eval(
    refs: np.ndarray, ests: np.ndarray, min_samples: int = 2048, permute: bool = False
) -> dict[str, np.ndarray]:
    """SDR, SIR, SAR ``(n_src,)`` of ``ests`` against ``refs``, by mir_eval's
    ``bss_eval_sources``: sources in the same order, or with ``permute`` (for a separator whose
    outputs are not tied to a video, e.g. ``audio_only``) in the order of ``ests`` with the best
    mean SDR, returned as ``order``.

    Raises:
        Unscorable: a reference is silent or shorter than ``min_samples``.
    """
    import mir_eval

    if refs.shape != ests.shape or refs.ndim != 2:
        raise ValueError(
            f"refs and ests must both be (n_src, samples), got {refs.shape}, {ests.shape}"
        )
    if refs.shape[1] < min_samples:
        raise Unscorable(f"too short: {refs.shape[1]} samples")
    silent = np.flatnonzero(np.abs(refs).max(1) == 0)
    if len(silent):
        raise Unscorable(f"silent reference: source {int(silent[0])}")
    if permute:
        scored = [
            {**bss_eval(refs, ests[list(p)], min_samples), "order": np.array(p)}
            for p in itertools.permutations(range(len(ests)))
        ]
        return max(scored, key=lambda r: float(np.mean(r["sdr"])))
    with warnings.catch_warnings():  # bss_eval_sources warns that 0.9 removes it (pinned < 0.9)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(
                refs, ests, compute_permutation=False
            )
        except (ValueError, np.linalg.LinAlgError) as err:
            raise Unscorable(f"bss_eval failed: {err}") from err
    return {"sdr": sdr, "sir": sir, "sar": sar}


def oracle_estimates(refs: np.ndarray, cfg: SpecConfig) -> dict[str, np.ndarray]:
    """The ideal binary and ideal ratio masks' estimates of each source from the sum of ``refs``,
    on the linear-frequency STFT (the mixture's phase): ``ibm`` and ``irm`` ``(n_src, samples)``."""
    x = torch.from_numpy(refs).double()
    spec = stft(x, cfg)  # (n_src, F, T)
    mix = spec.sum(0, keepdim=True)
    mag = spec.abs()
    ibm = (mag == mag.max(0, keepdim=True).values).double()
    irm = mag / mag.sum(0, keepdim=True).clamp_min(1e-12)
    n = refs.shape[1]
    return {
        "ibm": istft(mix * ibm, cfg, n).numpy(),
        "irm": istft(mix * irm, cfg, n).numpy(),
    }
