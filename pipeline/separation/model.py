"""The AVSGS separator, its size presets, the separator registry, the ``model`` params, and
checkpoints.

Every separator is a :class:`~pipeline.separation.base.Separator`: it records its constructor
arguments in ``config``, so a checkpoint (:func:`save_separator`) rebuilds it with
:func:`load_separator`. ``model.name`` picks one from :data:`SEPARATORS`; its settings are the
``model`` section of the same name (:class:`ModelParams`), so a switch one separator does not
have cannot be set for it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from pipeline import io
from pipeline.errors import PipelineError
from pipeline.graphs.roles import Role
from pipeline.separation.base import (
    NoOptions,
    Separator,
    background_features,
    principal_features,
    rebuild,
    unwrap,
)
from pipeline.separation.baselines import AudioOnly, CoSeparation, FrameConditioned
from pipeline.separation.nn import (
    AudioClassifier,
    ConditionedUNet,
    DirectionHead,
    RecurrentConditioner,
    SceneGraphEncoder,
)
from pipeline.separation.sobb import SoundOfBoundingBoxes

CHECKPOINT_SCHEMA = 2  # 2: config holds every argument, defaults included

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


@dataclasses.dataclass(frozen=True)
class AVSGSOptions:
    """``model.avsgs``: the paper's ablation switches (Table 3) and our sub-graph reading.

    Args:
        gat, edgeconv, gru, skip: the graph attention layer, the edge convolution, the GRU (else a
            linear map gives the N + 1 embeddings), the U-Net's skip connections.
        subgraphs: GRU recurrence ``i`` reads the embedding of its own sub-graph (principal
            object ``i`` and its context nodes; the background node for the last) in place of
            the whole graph's; ``false`` is the paper's eq. 1 (``docs/model.md``).
    """

    gat: bool = True
    edgeconv: bool = True
    gru: bool = True
    skip: bool = True
    subgraphs: bool = False


class AVSGS(Separator):
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
        gat, edgeconv, gru, skip, subgraphs: :class:`AVSGSOptions`; with ``subgraphs``, see
            :meth:`subgraph_embeddings`.
        edge_dim: the graph store's edge attributes (1: ASMP's 2.5D graph, ``graphs.builder
            asmp25d``, whose Chamfer-RBF weights the GAT reads; 0: none).

    Shapes:
        - **input:** ``mix_mag (B, 1, F, T)`` the mixtures' log-frequency magnitudes; a PyG batch
          of ``G`` graphs; ``mixture (G,)`` the mixture each graph's video is in
        - **output:** ``masks (G, N + 1, 1, F, T)`` in [0, 1], ``embeddings (G, N + 1, d)``, and
          with ``classify=True`` ``class_logits (G, N + 1, n_classes)`` of the masked spectrograms
    """

    name = "avsgs"
    Options = AVSGSOptions

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
        edge_dim: int = 0,
    ):
        super().__init__()
        self.n_outputs = n_slots + 1
        self.encoder = SceneGraphEncoder(
            node_channels, hidden, hidden, heads, aggr, readout, gat, edgeconv, edge_dim
        )
        width = self.encoder.out_channels  # eq. 1: zeta
        if subgraphs:  # the principal node's EdgeConv feature, after its sub-graph's readout
            width += hidden
        self.empty = nn.Parameter(torch.randn(width) * 0.02) if subgraphs else None
        self.conditioner = RecurrentConditioner(
            width, channels, self.n_outputs, normalize, gru, per_output=subgraphs
        )
        self.unet = ConditionedUNet(ngf, levels, channels, skip)
        self.classifier = AudioClassifier(n_classes, classifier, classifier_width, classifier_pool)

    def encode(self, graphs, mixture) -> dict[str, torch.Tensor]:
        """Embeddings ``(G, N + 1, d)`` of a PyG batch of ``G`` graphs."""
        zeta, nodes = self.encoder.encode(
            graphs.x, graphs.edge_index, graphs.batch, graphs.edge_attr
        )
        if not self.conditioner.per_output:  # eq. 1
            return {"embeddings": self.conditioner(zeta)}
        return {"embeddings": self.conditioner(self.subgraph_embeddings(graphs, nodes))}

    def subgraph_embeddings(self, graphs, nodes: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Each output's sub-graph embedding ``(G, N + 1, out_channels + hidden)``: for slot
        ``i`` the readout of principal object ``i`` and its context nodes (the nodes whose
        ``slot`` is ``i``) and the principal node's EdgeConv feature; for the last, the same of
        the background node; a slot with no object gets a learned vector."""
        _, g = nodes
        s, n = self.n_outputs, int(graphs.num_graphs)
        background = graphs.role == Role.BACKGROUND
        if bool((graphs.slot[~background] < 0).any()) or bool((graphs.slot >= s - 1).any()):
            raise ValueError(f"node slots must be in [0, {s - 1}) for principal and context nodes")
        group = graphs.batch * s + torch.where(background, s - 1, graphs.slot)
        objects, present = principal_features(graphs, s - 1, g)
        parts = torch.cat([objects, background_features(graphs, g)[:, None]], 1)
        parts = torch.cat([self.encoder.readout(nodes, group, n * s).view(n, s, -1), parts], -1)
        present = torch.cat([present, present.new_ones((n, 1))], 1)
        return torch.where(present[..., None], parts, self.empty)


@dataclasses.dataclass(frozen=True)
class ASMPOptions(AVSGSOptions):
    """``model.asmp``: AVSGS's switches, and the direction network's.

    Args:
        directions: the direction scheme, 10 or 28 classes (the graph store's ``direction10``
            or ``direction28`` labels; ``graphs.motion.labels`` must not be ``none``).
        direction_weight: the direction cross-entropy's weight in the loss (released code 0.05;
            0: ASMP with the 2.5D graph only, no motion loss).
    """

    directions: Literal[10, 28] = 28
    direction_weight: float = 0.05


class ASMP(AVSGS):
    r"""Audio Separator and Motion Predictor (Chatterjee et al., NeurIPS 2022; ``docs/depth.md``,
    ``shared/ASMP.md``): AVSGS, on the 2.5D graph when the graph store has edge weights, with a
    :class:`~pipeline.separation.nn.DirectionHead` that predicts each real source's direction of
    motion in one 1 s window from its **separated** spectrogram (the mask of the output of its
    slot times the mixture, log-magnitude, the window's columns). Trained jointly: the
    cross-entropy against the slot's label (the graph store's, ``graphs.motion``) is added with
    ``direction_weight``; windows without a label, empty slots and the background output are
    never targets.

    Each real slot's window is the first 1 s window inside the training crop that has a label
    (the released code draws the crop around a chosen window instead; ours keeps AVSGS's crops).

    Args:
        directions, direction_weight: :class:`ASMPOptions`; the rest as :class:`AVSGS`.
    """

    name = "asmp"
    Options = ASMPOptions

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
        edge_dim: int = 0,
        directions: int = 28,
        direction_weight: float = 0.05,
    ):
        super().__init__(
            node_channels, n_classes, n_slots, hidden, channels, heads, ngf, levels,
            classifier, classifier_width, classifier_pool, aggr, readout, normalize, gat,
            edgeconv, gru, skip, subgraphs, edge_dim,
        )  # fmt: skip
        if directions not in (10, 28):
            raise ValueError(f"model.asmp.directions must be 10 or 28, got {directions}")
        self.directions, self.direction_weight = directions, direction_weight
        self.direction = DirectionHead(directions, classifier, classifier_width, classifier_pool)

    def forward(
        self,
        mix_mag: torch.Tensor,
        graphs,
        mixture: torch.Tensor,
        classify: bool = False,
        windows: dict[str, Any] | None = None,
    ) -> dict[str, torch.Tensor]:
        """AVSGS's outputs and, with ``windows`` (``start_s (G,)`` each video's crop start in
        seconds, ``frames_per_s``), ``direction_logits (K, C)`` and ``direction_targets (K,)``
        of the ``K`` real slots with a labelled window inside the crop."""
        out = super().forward(mix_mag, graphs, mixture, classify)
        if windows is not None:
            out.update(self.direction_of(out["masks"], mix_mag[mixture], graphs, windows))
        return out

    def direction_of(self, masks, mix_mag, graphs, windows) -> dict[str, torch.Tensor]:
        """The direction logits and targets (see :meth:`forward`); ``mix_mag (G, 1, F, T)``."""
        from pipeline.separation.spectrogram import log_mag

        labels = getattr(graphs, f"direction{self.directions}", None)
        if labels is None:
            raise ValueError(
                "asmp needs direction labels in the graph store: set graphs.motion.labels "
                "(derived or truth)"
            )
        per_s = float(windows["frames_per_s"])
        cols, frames = int(round(per_s)), masks.shape[-1]
        picks = []
        for g, start in enumerate(windows["start_s"].tolist()):
            for slot in range(labels.shape[1]):
                for w in range(labels.shape[2]):
                    c0 = int(round((w - start) * per_s))
                    if labels[g, slot, w] >= 0 and c0 >= 0 and c0 + cols <= frames:
                        picks.append((g, slot, c0, int(labels[g, slot, w])))
                        break
        if not picks:
            empty = masks.new_zeros((0, self.directions))
            return {"direction_logits": empty, "direction_targets": empty[:, 0].long()}
        spec = torch.stack(
            [masks[g, s, :, :, c0 : c0 + cols] * mix_mag[g, :, :, c0 : c0 + cols]
             for g, s, c0, _ in picks]
        )  # fmt: skip
        targets = torch.tensor([p[3] for p in picks], device=masks.device)
        return {"direction_logits": self.direction(log_mag(spec)), "direction_targets": targets}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """AVSGS's groups, the direction network with the classifier (both judge separated
        spectrograms)."""
        groups = super().param_groups()
        head = {id(p) for p in self.direction.parameters()}
        groups["visual"] = [p for p in groups["visual"] if id(p) not in head]
        groups["classifier"] = groups["classifier"] + list(self.direction.parameters())
        return groups


SEPARATORS: dict[str, type[Separator]] = {
    cls.name: cls
    for cls in (AVSGS, ASMP, CoSeparation, FrameConditioned, AudioOnly, SoundOfBoundingBoxes)
}


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """``model``: ``name`` picks the separator (:data:`SEPARATORS`); its settings are the section
    of the same name, and the other sections are not read.

    Args:
        name: ``avsgs``, ``asmp`` (AVSGS with ASMP's direction network), a baseline
            (``coseparation``, ``frame``, ``audio_only``;
            :mod:`pipeline.separation.baselines`) or ``sobb`` (:mod:`pipeline.separation.sobb`,
            with ``detect.backend: proposals``).
        preset: ``small`` (CPU-sized, the synthetic default), ``paper`` (supplement B's sizes) or
            ``tiny`` (tests and smoke runs).
    """

    name: Literal["avsgs", "asmp", "coseparation", "frame", "audio_only", "sobb"]
    preset: Literal["small", "paper", "tiny"]
    avsgs: AVSGSOptions
    asmp: ASMPOptions
    coseparation: NoOptions
    frame: NoOptions
    audio_only: NoOptions
    sobb: NoOptions

    def options(self):
        """The selected separator's section."""
        return getattr(self, self.name)

    @classmethod
    def of(cls, name: str, preset: str = "small", **options) -> ModelParams:
        """``name``'s params with every section at its defaults and ``options`` in its own (for
        tests, benchmarks and notebooks; the stages read ``params.yaml``)."""
        if name not in SEPARATORS:
            raise PipelineError(
                f"model.name {name!r} is not a separator; known: {', '.join(sorted(SEPARATORS))}"
            )
        sections = {k: SEPARATORS[k].Options() for k in SEPARATORS}
        sections[name] = dataclasses.replace(sections[name], **options)
        return cls(name, preset, **sections)


def build_separator(name: str, config: dict[str, Any]) -> Separator:
    """A separator from its registry name and constructor arguments (:func:`rebuild`'s checks)."""
    return rebuild(SEPARATORS, name, config, "model.name")


def save_separator(path: str | Path, model: nn.Module, extra: dict[str, Any]) -> None:
    """One self-contained file: registry name, constructor args, weights and ``extra`` (label
    names, spectrogram settings, provenance)."""
    model = unwrap(model)
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
    model = rebuild(SEPARATORS, payload["name"], payload["config"], str(path))
    model.load_state_dict(payload["state_dict"])
    meta = {k: v for k, v in payload.items() if k not in ("state_dict",)}
    return model.eval(), meta


def model_config(
    params: ModelParams,
    recipe_name: str,
    node_channels: int,
    n_classes: int,
    n_slots: int,
    crop_size: int = 0,
    edge_dim: int = 0,
) -> dict[str, Any]:
    """The selected separator's constructor arguments: the graph store's facts (node feature
    size, classes, slots; ``crop_size``: node features are RGB crops of that side;
    ``edge_dim``: edge attributes per edge, the 2.5D builder's weights), the size
    preset, the recipe's graph choices, and its own ``model.<name>`` section."""
    from pipeline.separation.step import RECIPES

    recipe = RECIPES[recipe_name]
    sizes = {**PRESETS[params.preset]}
    if recipe_name == "reference" and params.preset == "paper":
        sizes["hidden"] = 256  # the released code: GAT 4 x 64 -> EdgeConv 256
    offered = {
        "node_channels": node_channels,
        "n_classes": n_classes,
        "n_slots": n_slots,
        "crop_size": crop_size,
        "edge_dim": edge_dim,
        **sizes,
        "aggr": recipe.aggr,
        "readout": recipe.readout,
        "normalize": recipe.normalize,
    }
    return SEPARATORS[params.name].arguments(offered, params.options())
