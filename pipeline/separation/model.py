"""The AVSGS separator, its size presets, the separator registry, and checkpoints.

A separator maps a mixture's log-frequency log-magnitude ``(B, 1, F, T)`` and the scene graphs
of the videos in it to ``S = N + 1`` mask logits per video (one per principal-object slot plus
background) and the embeddings that conditioned them. It records its constructor arguments in
``self.config``, so a checkpoint (``save_separator``) rebuilds it with ``load_separator``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from pipeline import io
from pipeline.errors import PipelineError
from pipeline.separation.baselines import (
    ROLE_BACKGROUND,
    AudioOnly,
    CoSeparation,
    FrameConditioned,
    background_features,
    principal_features,
)
from pipeline.separation.nn import (
    AudioClassifier,
    ConditionedUNet,
    RecurrentConditioner,
    SceneGraphEncoder,
)
from pipeline.separation.nn.unet import masks_from_embeddings
from pipeline.separation.sobb import SoundOfBoundingBoxes

CHECKPOINT_SCHEMA = 1

# Size presets. ``paper``: supplement B (512-wide graph and GRU, a 64-channel 7-level U-Net with a
# 2x2x512 bottleneck, a ResNet-18 classifier). ``small``: the same architecture narrowed so the
# synthetic world trains in minutes on 2 CPU cores. ``tiny``: for tests and smoke runs only.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"hidden": 512, "channels": 512, "heads": 4, "ngf": 64, "classifier": "resnet18"},
    "small": {
        "hidden": 64,
        "channels": 64,
        "heads": 4,
        "ngf": 8,
        "classifier": "small",
        "classifier_width": 8,
        "classifier_pool": 4,
    },
    "tiny": {
        "hidden": 8,
        "channels": 8,
        "heads": 2,
        "ngf": 4,
        "classifier": "small",
        "classifier_width": 4,
    },
}


class AVSGS(nn.Module):
    r"""Audio Visual Scene Graph Segmenter (Chatterjee et al., ICCV 2021).

    :class:`~pipeline.separation.nn.SceneGraphEncoder` turns each video's scene graph into
    :math:`\zeta`; :class:`~pipeline.separation.nn.RecurrentConditioner` turns :math:`\zeta` into
    :math:`N+1` embeddings; :class:`~pipeline.separation.nn.ConditionedUNet` predicts one mask of
    the mixture per embedding; :class:`~pipeline.separation.nn.AudioClassifier` classifies each
    masked spectrogram (the consistency loss).

    Args:
        node_channels: the graph store's feature size.
        n_classes: principal-object classes plus background.
        n_slots: :math:`N`, principal-object slots per video.
        hidden: graph width (node MLP, GAT, EdgeConv).
        channels: embedding size :math:`d`.
        heads: GAT heads.
        ngf, levels: U-Net width and depth.
        classifier, classifier_width, classifier_pool: the classifier's trunk (``small``: its
            width and input pooling).
        aggr, readout, normalize: the recipe's graph and conditioning choices (``docs/model.md``).
        gat, edgeconv, gru, skip: ablation switches.
        residual: the GAT keeps a linear map of each node's own feature
            (:class:`~pipeline.separation.nn.SceneGraphEncoder`); ``False`` as in the paper.
        subgraph_context: with ``subgraphs``, whether output ``i`` also reads the readout of its
            object's context nodes (``True``) or only its principal node's feature after the
            graph layers, which carries its context through attention (``False``).
        subgraphs: recurrence ``i`` of the GRU reads its own sub-graph's embedding
            (:meth:`subgraph_embeddings`) in place of :math:`\zeta`; ``False`` is eq. 1, every
            recurrence reading :math:`\zeta` (``docs/model.md``).

    Shapes:
        - **input:** ``mix_mag (B, 1, F, T)`` the mixtures' log-frequency magnitudes; a PyG batch
          of ``G`` graphs; ``mixture (G,)`` the mixture each graph's video is in
        - **output:** ``masks (G, N + 1, 1, F, T)`` in [0, 1], ``embeddings (G, N + 1, d)``, and
          with ``classify=True`` ``class_logits (G, N + 1, n_classes)`` of the masked spectrograms
    """

    name = "avsgs"

    def __init__(
        self,
        node_channels: int,
        n_classes: int,
        n_slots: int,
        hidden: int = 512,
        channels: int = 512,
        heads: int = 4,
        ngf: int = 64,
        levels: int = 7,
        classifier: Literal["resnet18", "small"] = "resnet18",
        classifier_width: int = 16,
        classifier_pool: int = 2,
        aggr: Literal["mean", "max"] = "mean",
        readout: Literal["edge", "sum"] = "edge",
        normalize: bool = True,
        gat: bool = True,
        edgeconv: bool = True,
        gru: bool = True,
        skip: bool = True,
        subgraphs: bool = False,
        residual: bool = False,
        subgraph_context: bool = True,
    ):
        super().__init__()
        self.config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.n_outputs = n_slots + 1
        self.encoder = SceneGraphEncoder(
            node_channels, hidden, hidden, heads, aggr, readout, gat, edgeconv, residual
        )
        self.subgraph_context = subgraph_context
        width = self.encoder.out_channels  # eq. 1: zeta
        if subgraphs:  # the principal node's EdgeConv feature, after its sub-graph's readout
            width = hidden + (width if subgraph_context else 0)
        self.empty = nn.Parameter(torch.randn(width) * 0.02) if subgraphs else None
        self.conditioner = RecurrentConditioner(
            width, channels, self.n_outputs, normalize, gru, per_output=subgraphs
        )
        self.unet = ConditionedUNet(ngf, levels, channels, skip)
        self.classifier = AudioClassifier(n_classes, classifier, classifier_width, classifier_pool)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimizer group: ``visual`` (graph encoder, GRU), ``separator`` (U-Net),
        ``classifier``."""
        return {
            "visual": [*self.encoder.parameters(), *self.conditioner.parameters()],
            "separator": list(self.unet.parameters()),
            "classifier": list(self.classifier.parameters()),
        }

    def embed(self, graphs) -> torch.Tensor:
        """Embeddings ``(G, N + 1, d)`` of a PyG batch of ``G`` graphs."""
        zeta, nodes = self.encoder.encode(graphs.x, graphs.edge_index, graphs.batch)
        if not self.conditioner.per_output:  # eq. 1
            return self.conditioner(zeta)
        return self.conditioner(self.subgraph_embeddings(graphs, nodes))

    def subgraph_embeddings(self, graphs, nodes: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Each output's sub-graph embedding ``(G, N + 1, out_channels + hidden)``: for slot
        ``i`` the readout of principal object ``i`` and its context nodes (the nodes whose
        ``slot`` is ``i``) and the principal node's EdgeConv feature; for the last, the same of
        the background node; a slot with no object gets a learned vector. Without
        ``subgraph_context``, ``(G, N + 1, hidden)``: the EdgeConv features alone."""
        _, g = nodes
        s, n = self.n_outputs, int(graphs.num_graphs)
        background = graphs.role == ROLE_BACKGROUND
        if bool((graphs.slot[~background] < 0).any()) or bool((graphs.slot >= s - 1).any()):
            raise ValueError(f"node slots must be in [0, {s - 1}) for principal and context nodes")
        group = graphs.batch * s + torch.where(background, s - 1, graphs.slot)
        objects, present = principal_features(graphs, s - 1, g)
        parts = torch.cat([objects, background_features(graphs, g)[:, None]], 1)
        if self.subgraph_context:
            parts = torch.cat([self.encoder.readout(nodes, group, n * s).view(n, s, -1), parts], -1)
        present = torch.cat([present, present.new_ones((n, 1))], 1)
        return torch.where(present[..., None], parts, self.empty)

    def forward(
        self, mix_mag: torch.Tensor, graphs, mixture: torch.Tensor, classify: bool = False
    ) -> dict[str, torch.Tensor]:
        judge = self.classifier if classify else None
        return masks_from_embeddings(self.unet, judge, mix_mag, self.embed(graphs), mixture)


SEPARATORS: dict[str, type[nn.Module]] = {
    cls.name: cls
    for cls in (AVSGS, CoSeparation, FrameConditioned, AudioOnly, SoundOfBoundingBoxes)
}


def build_separator(name: str, config: dict[str, Any]) -> nn.Module:
    """A separator from its registry name and constructor arguments."""
    if name not in SEPARATORS:
        raise PipelineError(f"unknown separator {name!r}; known: {', '.join(sorted(SEPARATORS))}")
    return SEPARATORS[name](**config)


def save_separator(path: str | Path, model: nn.Module, extra: dict[str, Any]) -> None:
    """One self-contained file: registry name, constructor args, weights and ``extra`` (label
    names, spectrogram settings, provenance)."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    payload = {
        "schema_version": CHECKPOINT_SCHEMA,
        "name": model.name,
        "config": model.config,
        "state_dict": model.state_dict(),
        **extra,
    }
    # To an open file: given a path, torch.save names the zip records after the (random, temporary)
    # file name, so equal weights would get different bytes and DVC would rerun what follows.
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)


def load_separator(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The separator in eval mode and the checkpoint's other entries."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: no separator checkpoint here; run `dvc repro train`")
    payload = io.load_torch(
        path, "separator checkpoint", "delete it and rerun `dvc repro train` to write it again"
    )
    if payload.get("schema_version") != CHECKPOINT_SCHEMA:
        raise PipelineError(
            f"{path}: separator checkpoint schema {payload.get('schema_version')!r}, this code "
            f"reads {CHECKPOINT_SCHEMA}; retrain with `dvc repro -f train`"
        )
    model = build_separator(payload["name"], payload["config"])
    model.load_state_dict(payload["state_dict"])
    meta = {k: v for k, v in payload.items() if k not in ("state_dict",)}
    return model.eval(), meta
