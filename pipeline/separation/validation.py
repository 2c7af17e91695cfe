"""The fixed validation mixtures that pick the model during training."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch

from pipeline.separation.base import unwrap
from pipeline.separation.bss import Unscorable, bss_eval
from pipeline.separation.data import collate, load_item
from pipeline.separation.step import mix_parts, separate


class Validation:
    """The fixed validation mixtures, read and collated once, scored by mean SDR of the separated
    videos. The mixture's own scores (each video's estimate taken to be the mixture), which no
    training changes, are computed once, at the first validation (they were half of each
    validation's time)."""

    def __init__(self, graphs, audio, pairs, recipe, cfg, batch_size: int):
        self.recipe, self.cfg = recipe, cfg
        self.batches = [
            collate([load_item(graphs, audio, p, cfg.samples) for p in pairs[i : i + batch_size]])
            for i in range(0, len(pairs), batch_size)
        ]

    @functools.cached_property
    def mixture(self) -> list[list[np.ndarray | None]]:
        """Per batch, each pair's SDR of the mixture as both estimates; ``None``: unscorable (a
        silent or short reference), so the pair is always skipped."""
        scores = []
        for batch in self.batches:
            parts, mix = (x.double().numpy() for x in mix_parts(batch["wav"], self.recipe))
            scores.append([])
            for refs, m in zip(parts, mix, strict=True):
                try:
                    scores[-1].append(bss_eval(refs, np.stack([m, m]))["sdr"])
                except Unscorable:
                    scores[-1].append(None)
        return scores

    @torch.no_grad()
    def __call__(self, model, device) -> dict[str, Any]:
        model.eval()
        permute = unwrap(model).permutation_invariant
        sdr, sdr_mix, skipped = [], [], 0
        for batch, mixture in zip(self.batches, self.mixture, strict=True):
            wav, graphs = batch["wav"].to(device), batch["graphs"].to(device)
            out = separate(model, wav, graphs, self.recipe, self.cfg)
            parts, video = (out[n].double().cpu().numpy() for n in ("parts", "video"))
            for refs, est, m in zip(parts, video, mixture, strict=True):
                try:
                    if m is None:
                        raise Unscorable("the mixture is unscorable")
                    s = bss_eval(refs, est, permute=permute)["sdr"]
                except Unscorable:  # the pair is counted as skipped
                    skipped += 1
                    continue
                sdr.extend(s)
                sdr_mix.extend(m)
        model.train()
        if not sdr:
            nan = float("nan")
            return {"sdr": nan, "sdr_mixture": nan, "pairs": 0, "skipped": skipped}
        return {
            "sdr": float(np.mean(sdr)),
            "sdr_mixture": float(np.mean(sdr_mix)),
            "pairs": len(sdr) // 2,
            "skipped": skipped,
        }


def validate(model, graphs, audio, pairs, recipe, cfg, batch_size, device) -> dict[str, Any]:
    """Mean SDR of the separated videos over the validation mixtures, and of the mixture itself
    (one :class:`Validation`)."""
    return Validation(graphs, audio, pairs, recipe, cfg, batch_size)(model, device)
