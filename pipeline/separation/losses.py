"""AVSGS's losses (section 3.3): permutation-invariant consistency, co-separation, orthogonality.

Shapes: ``G`` videos, ``S = N + 1`` outputs per video, ``C`` classes, masks ``(G, S, 1, F, T)``,
embeddings ``(G, S, d)``.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import torch
import torch.nn.functional as F


@lru_cache(maxsize=32)
def permutations(n: int, fix_last: bool = False) -> torch.Tensor:
    """All permutations of ``range(n)`` as ``(n!, n)``; with ``fix_last`` only those that keep the
    last element (the background) in place, as the released code's swap of foreground slots.
    Cached on the CPU; callers move it to their device."""
    cpu = torch.device("cpu")
    if fix_last:
        rest = permutations(n - 1) if n > 1 else torch.zeros((1, 0), dtype=torch.long, device=cpu)
        return torch.cat([rest, torch.full((len(rest), 1), n - 1, device=cpu)], 1)
    perms = list(itertools.permutations(range(n)))
    return torch.tensor(perms, dtype=torch.long, device=cpu).view(-1, n)


def pit_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, perms: torch.Tensor
) -> torch.Tensor:
    r"""Eq. 3 per video: :math:`\min_\sigma \sum_c -\log p_{\sigma(c)}(l_c)`, all permutations at
    once.

    Args:
        logits: ``(G, S, C)`` class logits of each output.
        targets: ``(G, S)`` class of each slot.
        perms: ``(P, S)`` candidate assignments (:func:`permutations`).

    Returns:
        ``(G,)`` the loss of the best assignment of each video.
    """
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(
            "expected logits (G, S, C) and targets (G, S), got "
            f"{tuple(logits.shape)}, {tuple(targets.shape)}"
        )
    logp = F.log_softmax(logits, -1)  # (G, S_out, C)
    s = targets.shape[1]
    # ce[g, i, c] = -log p_i(l_c): output i judged against slot c's class
    ce = -logp.gather(2, targets[:, None, :].expand(-1, s, -1))
    perms = perms.to(ce.device)
    cost = ce[:, perms, torch.arange(s, device=ce.device)].sum(
        -1
    )  # (G, P): output perms[p, c] for slot c
    return cost.min(1).values


def coseparation_binary(masks: torch.Tensor, ibm: torch.Tensor) -> torch.Tensor:
    r"""Eq. 4 (paper): :math:`\| \sum_i \hat{M}_i - M_{ibm} \|_1`, as a mean over videos and bins.

    ``masks (G, S, 1, F, T)`` after the sigmoid, ``ibm (G, 1, F, T)``."""
    return (masks.sum(1) - ibm).abs().mean()


def coseparation_ratio(
    masks: torch.Tensor, ratio: torch.Tensor, mix_mag: torch.Tensor
) -> torch.Tensor:
    """The released code's form: the target is the ratio mask ``|S_video| / |S_mix|`` clamped to
    [0, 5] (``ratio (G, 1, F, T)``), the L1 weighted by ``log1p(|S_mix|)`` clamped to [1e-3, 10]
    (``mix_mag (G, 1, F, T)``)."""
    return (ratio_weight(mix_mag) * (masks.sum(1) - ratio).abs()).mean()


def ratio_weight(mix_mag: torch.Tensor) -> torch.Tensor:
    """The released code's weight of a bin in the ratio-mask L1: ``log1p(|S_mix|)`` clamped to
    [1e-3, 10]."""
    return torch.log1p(mix_mag).clamp(1e-3, 10)


def coseparation_pit(
    masks: torch.Tensor, target: torch.Tensor, mix_mag: torch.Tensor | None = None
) -> torch.Tensor:
    """Permutation-invariant co-separation for mixtures of two videos (videos ``2m, 2m + 1``):
    per mixture, the smaller of the L1 losses with the targets in order or swapped, averaged.
    ``target (G, 1, F, T)`` is the binary or (with ``mix_mag``, weighted as in
    :func:`coseparation_ratio`) ratio mask."""
    est = masks.sum(1)  # (G, 1, F, T)
    weight = 1.0 if mix_mag is None else ratio_weight(mix_mag)
    if len(est) % 2:
        raise ValueError(f"expected mixtures of two videos, got {len(est)} videos")
    swapped = target.view(-1, 2, *target.shape[1:]).flip(1).flatten(0, 1)
    per_video = [(weight * (est - t).abs()).flatten(1).mean(1) for t in (target, swapped)]
    per_mixture = torch.stack([p.view(-1, 2).mean(1) for p in per_video])  # (2, B)
    return per_mixture.min(0).values.mean()


def orthogonality_pairs(y: torch.Tensor) -> torch.Tensor:
    r"""Eq. 2 (paper): :math:`\sum_{i \ne j} (\mathbf{y}_i^\top \mathbf{y}_j)^2` per video,
    averaged over videos. ``y (G, S, d)``; zero when each video's embeddings are orthogonal."""
    gram = y @ y.transpose(1, 2)
    off = gram - torch.diag_embed(torch.diagonal(gram, dim1=1, dim2=2))
    return off.pow(2).sum((1, 2)).mean()


def orthogonality_batch_cosine(y: torch.Tensor) -> torch.Tensor:
    """The released code's form: the square of the batch-mean cosine similarity between a video's
    embeddings (over all pairs ``i < j``)."""
    yn = F.normalize(y, dim=-1)
    i, j = torch.triu_indices(y.shape[1], y.shape[1], offset=1, device=y.device)
    return (yn[:, i] * yn[:, j]).sum(-1).mean().pow(2)
