"""One mix-and-separate step's arithmetic, shared by training, validation and evaluation: the
recipes, the spectrograms of a mixture and its parts, the losses, and separated waveforms.

Shapes: ``B`` mixtures of 2 videos, ``G = 2B`` videos, ``S = N + 1`` outputs per video, ``L``
samples, spectrograms ``(.., 1, F, T)`` on the log-frequency grid.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch

from pipeline.separation import losses
from pipeline.separation.base import LOSSES, unwrap
from pipeline.separation.spectrogram import SpecConfig, apply_mask, log_freq_magnitude


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Every point where the paper's text and the released code differ (``docs/model.md``)."""

    name: str
    weights: tuple[float, float, float]  # consistency, co-separation, orthogonality
    target: Literal["binary", "ratio"]  # co-separation target mask
    mixture: Literal["sum", "mean"]  # x_m = x_1 + x_2, or their average
    permutations: Literal["all", "foreground"]  # consistency assignments
    orthogonality: Literal["pairs", "batch_cosine"]
    aggr: Literal["mean", "max"]  # EdgeConv aggregation
    readout: Literal["edge", "sum"]  # graph readout
    normalize: bool  # unit-norm conditioning embeddings


RECIPES = {
    "paper": Recipe(
        "paper", (1.0, 0.05, 1.0), "binary", "sum", "all", "pairs", "mean", "edge", True
    ),
    "reference": Recipe(
        "reference",
        (0.05, 1.0, 1.0),
        "ratio",
        "mean",
        "foreground",
        "batch_cosine",
        "max",
        "sum",
        False,
    ),
}


def mix_parts(wav: torch.Tensor, recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor]:
    """From ``wav (B, 2, L)``: each video's part in the mixture ``parts (B, 2, L)`` (the
    references) and the mixture ``mix (B, L)``."""
    if wav.dim() != 3 or wav.shape[1] != 2:
        raise ValueError(f"expected wav (batch, 2, samples), got {tuple(wav.shape)}")
    parts = wav * (0.5 if recipe.mixture == "mean" else 1.0)
    return parts, parts.sum(1)


def spectrograms(wav: torch.Tensor, recipe: Recipe, cfg: SpecConfig) -> dict[str, torch.Tensor]:
    """From ``wav (B, 2, L)``: ``parts`` and ``mix`` (:func:`mix_parts`), the mixture's complex
    STFT ``spec (B, F_lin, T)``, magnitudes ``mix_mag (B, 1, F, T)`` and ``part_mag (B, 2, 1, F,
    T)``."""
    parts, mix = mix_parts(wav, recipe)
    spec, mix_mag = log_freq_magnitude(mix, cfg)
    _, part_mag = log_freq_magnitude(parts.flatten(0, 1), cfg)
    return {
        "mix": mix,
        "parts": parts,
        "spec": spec,
        "mix_mag": mix_mag,
        "part_mag": part_mag.view(*wav.shape[:2], *part_mag.shape[1:]),
    }


def slot_targets(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Classes of each video's ``N + 1`` outputs ``(G, N + 1)``: its slot labels (an empty slot,
    -1, is background) and background (class ``n_classes - 1``) for the last."""
    background = n_classes - 1
    y = torch.where(y < 0, torch.full_like(y, background), y)
    return torch.cat([y, torch.full_like(y[:, :1], background)], 1)


def compute_losses(
    model,
    batch: dict[str, Any],
    recipe: Recipe,
    cfg: SpecConfig,
    use: tuple[bool, bool, bool] = (True, True, True),
) -> dict[str, torch.Tensor]:
    """The weighted loss (``loss``) and its terms for a batch from :func:`data.collate`; ``use``
    switches consistency, co-separation and orthogonality on or off (ablations). A term the
    model cannot use (its ``losses``) is zero; a ``permutation_invariant`` model's co-separation
    loss takes the better assignment of its outputs to each mixture's two videos. ASMP adds
    ``direction``, its direction cross-entropy, weighted by its ``direction_weight``."""
    s = spectrograms(batch["wav"], recipe, cfg)
    mixture = batch["mixture"]
    base = unwrap(model)
    use = tuple(u and name in base.losses for u, name in zip(use, LOSSES, strict=True))
    extra = {}
    if hasattr(base, "direction") and "starts" in batch:  # ASMP: its windows' directions
        start_s = batch["starts"].reshape(-1).to(torch.float64) / cfg.sample_rate
        extra["windows"] = {"start_s": start_s, "frames_per_s": cfg.sample_rate / cfg.hop}
    res = model(s["mix_mag"], batch["graphs"], mixture, classify=use[0], **extra)
    masks, y = res["masks"], res["embeddings"]  # (G, S, 1, F, T), (G, S, d)
    mix_mag = s["mix_mag"][mixture]  # (G, 1, F, T)
    part_mag = s["part_mag"].flatten(0, 1)  # (G, 1, F, T), in mixture order
    zero = masks.new_zeros(())
    out = {"consistency": zero, "coseparation": zero, "orthogonality": zero}
    if use[0]:
        n_classes = res["class_logits"].shape[-1]
        perms = losses.permutations(masks.shape[1], fix_last=recipe.permutations == "foreground")
        targets = slot_targets(batch["graphs"].y, n_classes)
        out["consistency"] = losses.pit_cross_entropy(res["class_logits"], targets, perms).mean()
    if use[1]:
        if recipe.target == "binary":
            other = s["part_mag"].flip(1).flatten(0, 1)
            first = (torch.arange(len(part_mag), device=part_mag.device) % 2 == 0)[
                :, None, None, None
            ]
            target = torch.where(first, part_mag >= other, part_mag > other).float()
        else:
            target = (part_mag / (mix_mag + 1e-10)).clamp(0, 5)
        if base.permutation_invariant:
            out["coseparation"] = losses.coseparation_pit(
                masks, target, mix_mag if recipe.target == "ratio" else None
            )
        elif recipe.target == "binary":
            out["coseparation"] = losses.coseparation_binary(masks, target)
        else:
            out["coseparation"] = losses.coseparation_ratio(masks, target, mix_mag)
    if use[2] and masks.shape[1] > 1:
        ortho = (
            losses.orthogonality_pairs
            if recipe.orthogonality == "pairs"
            else losses.orthogonality_batch_cosine
        )
        out["orthogonality"] = ortho(y)
    w = recipe.weights
    out["loss"] = (
        w[0] * out["consistency"] + w[1] * out["coseparation"] + w[2] * out["orthogonality"]
    )
    if "direction_logits" in res:  # ASMP's motion loss, masked to labelled real sources
        logits, targets = res["direction_logits"], res["direction_targets"]
        out["direction"] = (
            torch.nn.functional.cross_entropy(logits, targets) if len(targets) else zero
        )
        out["loss"] = out["loss"] + base.direction_weight * out["direction"]
    return out


@torch.no_grad()
def separate(
    model, wav: torch.Tensor, graphs, recipe: Recipe, cfg: SpecConfig
) -> dict[str, torch.Tensor]:
    """Separate each mixture of ``wav (B, 2, L)`` with its videos' graphs (``2B``, in mixture
    order). Returns ``mix (B, L)``, ``parts (B, 2, L)`` (the references), ``video (B, 2, L)``
    (each video's estimate: the sum of its masks, clipped to [0, 1] for a binary-mask recipe)
    and ``slots (B, 2, S, L)`` (each output's estimate)."""
    s = spectrograms(wav, recipe, cfg)
    b, _, length = wav.shape
    mixture = torch.arange(b, device=wav.device).repeat_interleave(2)
    masks = model(s["mix_mag"], graphs, mixture)["masks"]
    video_mask = masks.sum(1)
    if recipe.target == "binary":
        video_mask = video_mask.clamp(0, 1)
    n_out = masks.shape[1]
    spec = s["spec"][mixture]
    video = apply_mask(spec, video_mask, cfg, length)
    slots = apply_mask(spec.repeat_interleave(n_out, 0), masks.flatten(0, 1), cfg, length)
    return {
        "mix": s["mix"],
        "parts": s["parts"],
        "video": video.view(b, 2, length),
        "slots": slots.view(b, 2, n_out, length),
    }
