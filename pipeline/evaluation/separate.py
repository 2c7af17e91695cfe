"""Whole-clip separation: windows of the model's input length, separated in batches and joined by
overlap-add with trapezoidal cross-fades.

Shapes: ``L`` samples of a whole clip, ``W`` the model's window (``SpecConfig.samples``), ``S =
N + 1`` outputs per video.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.device import model_device
from pipeline.separation.spectrogram import SpecConfig, apply_mask, log_freq_magnitude
from pipeline.separation.step import Recipe, separate


def window_starts(length: int, window: int, hop: int) -> list[int]:
    """Starts of windows covering ``length`` samples: every ``hop``, the last aligned to the end."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window, hop))
    return [*starts, length - window]


def fade(window: int, ramp: int) -> np.ndarray:
    """Overlap-add weights: linear ramps of ``ramp`` samples at both ends, never zero."""
    t = np.arange(window)
    return np.clip(np.minimum(t + 1, window - t) / ramp, 1e-3, 1.0)


def overlap_add(
    chunks: np.ndarray, starts: list[int], length: int, weights: np.ndarray
) -> np.ndarray:
    """Join ``chunks (K, ..., W)`` placed at ``starts`` into ``(..., length)``."""
    window = chunks.shape[-1]
    out = np.zeros((*chunks.shape[1:-1], max(length, window)))
    norm = np.zeros(max(length, window))
    for chunk, s in zip(chunks, starts, strict=True):
        out[..., s : s + window] += chunk * weights
        norm[s : s + window] += weights
    return (out / norm)[..., :length]


def _cut(wav: np.ndarray, starts: list[int], window: int) -> np.ndarray:
    """``(..., L)`` -> ``(K, ..., W)``, zero-padded past the end."""
    out = np.zeros((len(starts), *wav.shape[:-1], window), np.float32)
    for i, s in enumerate(starts):
        piece = wav[..., s : s + window]
        out[i, ..., : piece.shape[-1]] = piece
    return out


@torch.no_grad()
def separate_pair(
    model,
    wav: np.ndarray,
    graphs: list,
    recipe: Recipe,
    cfg: SpecConfig,
    batch: int = 8,
) -> dict[str, np.ndarray]:
    """Separate the mixture of two whole clips ``wav (2, L)`` with their graphs (``[Data, Data]``).

    Returns ``parts (2, L)`` (each clip's part in the mixture: the references), ``mix (L,)``,
    ``video (2, L)`` (each clip's estimate) and ``slots (2, S, L)``."""
    from torch_geometric.data import Batch

    length, window = wav.shape[-1], cfg.samples
    starts = window_starts(length, window, window // 2)
    chunks = _cut(wav, starts, window)  # (K, 2, W)
    device = model_device(model)
    video, slots = [], []
    for i in range(0, len(chunks), batch):
        part = torch.from_numpy(chunks[i : i + batch]).to(device)
        g = Batch.from_data_list(graphs * len(part)).to(device)
        out = separate(model, part, g, recipe, cfg)
        video.append(out["video"].double().cpu().numpy())
        slots.append(out["slots"].double().cpu().numpy())
    w = fade(window, window // 4)
    scale = 0.5 if recipe.mixture == "mean" else 1.0
    parts = wav.astype(np.float64) * scale
    return {
        "parts": parts,
        "mix": parts.sum(0),
        "video": overlap_add(np.concatenate(video), starts, length, w),
        "slots": overlap_add(np.concatenate(slots), starts, length, w),
    }


@torch.no_grad()
def separate_clip(
    model, mix: np.ndarray, graph, recipe: Recipe, cfg: SpecConfig, batch: int = 8
) -> np.ndarray:
    """Each output's estimate ``(S, L)`` of one clip's own audio ``mix (L,)`` (scaled as a part of a
    training mixture), conditioned on the clip's graph alone."""
    from torch_geometric.data import Batch

    length, window = mix.shape[-1], cfg.samples
    starts = window_starts(length, window, window // 2)
    chunks = _cut(mix, starts, window)  # (K, W)
    device = model_device(model)
    outs = []
    for i in range(0, len(chunks), batch):
        part = torch.from_numpy(chunks[i : i + batch]).to(device)
        spec, mag = log_freq_magnitude(part, cfg)
        k = len(part)
        graphs = Batch.from_data_list([graph] * k).to(device)
        masks = model(mag, graphs, torch.arange(k, device=device))["masks"]
        s = masks.shape[1]
        est = apply_mask(spec.repeat_interleave(s, 0), masks.flatten(0, 1), cfg, window)
        outs.append(est.view(k, s, window).double().cpu().numpy())
    return overlap_add(np.concatenate(outs), starts, length, fade(window, window // 4))
