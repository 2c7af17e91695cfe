"""What every separator has: the :class:`Separator` base, and the graph-batch helpers its
subclasses share.

A separator maps a mixture's log-frequency magnitude ``(B, 1, F, T)`` and the scene graphs of the
videos in it to ``S`` masks per video and the embeddings that conditioned them. It does so in two
hooks, so a caller never asks a model what it is:

- :meth:`Separator.encode` (the visual side): the graphs -> embeddings ``(G, S, d)`` (and
  whatever else the decoder needs, in the same dict);
- :meth:`Separator.decode` (the audio side): the mixture and the encoding -> ``masks (G, S, 1,
  F, T)``, ``embeddings``, and with ``classify`` the class logits of the masked spectrograms.

Class attributes say what the training and scoring code may ask of it: ``losses`` (the terms of
:data:`~pipeline.separation.step.LOSSES` it can use; the others are skipped whatever the switches
say), ``permutation_invariant`` (trained and scored on the better assignment of its outputs to
the videos) and ``Options`` (its section of ``params.yaml``, ``model.<name>``).

Every constructor argument, defaults included, is recorded in ``config`` when the object is built
(as demucs' ``capture_init`` does), so a checkpoint rebuilds exactly the model that was trained;
:func:`rebuild` refuses an argument the code no longer takes instead of dropping it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, ClassVar

import torch
from torch import nn

from pipeline.errors import PipelineError
from pipeline.graphs.roles import Role
from pipeline.separation.nn import AudioClassifier, ConditionedUNet
from pipeline.separation.nn.unet import masks_from_embeddings

LOSSES = ("consistency", "coseparation", "orthogonality")


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A separator with no settings of its own beyond the U-Net's skip connections."""

    skip: bool = True  # the U-Net's skip connections (an ablation, paper Table 3)


def _capture_init(init):
    """Wrap ``__init__`` so the finished object holds every argument it was built with."""

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        bound = inspect.signature(init).bind(self, *args, **kwargs)
        bound.apply_defaults()
        init(self, *args, **kwargs)
        # the outermost __init__ returns last, so its arguments are the ones kept
        self.config = {k: v for k, v in bound.arguments.items() if k != "self"}

    return wrapper


class Separator(nn.Module):
    """The base of every separator (see the module). A subclass sets ``unet``, the conditioned
    U-Net (one mask per embedding, each mixture's encoder pass shared by its embeddings), and
    optionally ``classifier``, which classifies the masked spectrograms, where its modules are
    built: the order of construction draws the initial weights."""

    name: ClassVar[str]
    losses: ClassVar[tuple[str, ...]] = LOSSES
    permutation_invariant: ClassVar[bool] = False
    Options: ClassVar[type] = NoOptions

    config: dict[str, Any]
    n_outputs: int

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _capture_init(cls.__init__)
        unknown = set(cls.losses) - set(LOSSES)
        if unknown:
            raise TypeError(f"{cls.__name__}.losses names unknown losses {sorted(unknown)}")

    def __init__(self):
        super().__init__()
        self.unet: ConditionedUNet
        self.classifier: AudioClassifier | None = None

    def encode(self, graphs, mixture: torch.Tensor) -> dict[str, torch.Tensor]:
        """The visual side: ``embeddings (G, S, d)`` of a PyG batch of ``G`` graphs (``mixture
        (G,)``: the mixture each video is in)."""
        raise NotImplementedError

    def embed(self, graphs, mixture: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`encode`'s embeddings alone."""
        return self.encode(graphs, mixture)["embeddings"]

    def decode(
        self,
        mix_mag: torch.Tensor,
        encoded: dict[str, torch.Tensor],
        mixture: torch.Tensor,
        classify: bool = False,
    ) -> dict[str, torch.Tensor]:
        """The audio side: one mask of its mixture per embedding (and with ``classify`` and a
        classifier, the class logits of each masked spectrogram)."""
        judge = self.classifier if classify else None
        return masks_from_embeddings(self.unet, judge, mix_mag, encoded["embeddings"], mixture)

    def forward(
        self, mix_mag: torch.Tensor, graphs, mixture: torch.Tensor, classify: bool = False
    ) -> dict[str, torch.Tensor]:
        return self.decode(mix_mag, self.encode(graphs, mixture), mixture, classify)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimizer group: ``visual`` (everything that makes the embeddings),
        ``separator`` (the U-Net), ``classifier``."""
        separator = {id(p) for p in self.unet.parameters()}
        judge = {id(p) for p in self.classifier.parameters()} if self.classifier else set()
        return {
            "visual": [p for p in self.parameters() if id(p) not in separator | judge],
            "separator": list(self.unet.parameters()),
            "classifier": list(self.classifier.parameters()) if self.classifier else [],
        }

    @classmethod
    def arguments(cls, offered: dict[str, Any], options) -> dict[str, Any]:
        """The constructor arguments from what the pipeline offers (the store's facts, the size
        preset, the recipe) and this separator's ``options`` (its params section), every one of
        which it must take."""
        takes = inspect.signature(cls.__init__).parameters
        own = dataclasses.asdict(options)
        missing = sorted(set(own) - set(takes))
        if missing:  # a programming error: an Options field the class does not take
            raise TypeError(f"{cls.__name__} does not take its option(s) {missing}")
        return {**{k: v for k, v in offered.items() if k in takes}, **own}


def unwrap(model: nn.Module) -> Separator:
    """The separator inside a :class:`~torch.nn.parallel.DistributedDataParallel` wrapper."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.module
    return model


def rebuild(registry: dict[str, type[Separator]], name: str, config: dict[str, Any], where: str):
    """A separator from its registry name and recorded arguments; ``where`` names the file for
    the error when the code no longer builds what it recorded."""
    if name not in registry:
        raise PipelineError(
            f"{where}: unknown separator {name!r}; known: {', '.join(sorted(registry))}"
        )
    takes = inspect.signature(registry[name].__init__).parameters
    dropped = sorted(set(config) - set(takes))
    if dropped:
        raise PipelineError(
            f"{where}: the {name} separator was built with {dropped}, which this code no longer "
            f"takes; retrain it (`dvc repro -f train`)"
        )
    return registry[name](**config)


def background_features(graphs, x: torch.Tensor | None = None) -> torch.Tensor:
    """Each graph's background-node feature ``(G, D)`` (every graph has exactly one), from the
    graphs' node features or from ``x (|V|, D)``, features of the same nodes."""
    x = graphs.x if x is None else x
    keep = graphs.role == Role.BACKGROUND
    n = int(graphs.num_graphs)
    if int(keep.sum()) != n:
        raise ValueError(f"expected one background node per graph, got {int(keep.sum())} for {n}")
    return x.new_zeros((n, x.shape[1])).index_copy(0, graphs.batch[keep], x[keep])


def principal_features(
    graphs, n_slots: int, x: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each graph's principal-node feature per slot ``(G, N, D)`` and which slots hold one
    ``(G, N)`` bool, from the graphs' node features or from ``x (|V|, D)``."""
    x = graphs.x if x is None else x
    keep = graphs.role == Role.PRINCIPAL
    n = int(graphs.num_graphs)
    index = graphs.batch[keep] * n_slots + graphs.slot[keep]
    feats = x.new_zeros((n * n_slots, x.shape[1])).index_copy(0, index, x[keep])
    present = torch.zeros(n * n_slots, dtype=torch.bool, device=x.device)
    present[index] = True
    return feats.view(n, n_slots, -1), present.view(n, n_slots)
