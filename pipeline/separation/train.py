"""Training: mix-and-separate over seeded pairs of training clips, validated on a fixed list of
validation mixtures, resumable from one state file, and the same code under ``torchrun`` (DDP).

The state file (``--state``) holds everything needed to continue exactly: the model, optimizer
and scheduler states, the step, the RNG states, the logged history and the best model so far. It
is rewritten atomically every ``train.checkpoint_every`` steps; a rerun with the same settings and
data resumes from it (and one with other settings starts afresh, saying so).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import inspect
import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from pipeline import io
from pipeline.device import resolve_device
from pipeline.distributed import rank_and_world
from pipeline.errors import PipelineError
from pipeline.graphs.store import GraphStore
from pipeline.separation.audio_store import AudioStore
from pipeline.separation.bss import Unscorable, bss_eval
from pipeline.separation.data import (
    MixtureDataset,
    check_gain,
    collate,
    load_item,
    validation_pairs,
)
from pipeline.separation.model import PRESETS, SEPARATORS, build_separator, save_separator
from pipeline.separation.spectrogram import SpecConfig
from pipeline.separation.step import RECIPES, compute_losses, mix_parts, separate

log = logging.getLogger(__name__)
STATE_SCHEMA = 1


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """``model``.

    Args:
        name: the separator (registry name): ``avsgs``, or a baseline (``coseparation``,
            ``frame``, ``audio_only``; :mod:`pipeline.separation.baselines`), or ``sobb``
            (:mod:`pipeline.separation.sobb`, with ``detect.backend: proposals``).
        preset: ``small`` (CPU-sized, the synthetic default), ``paper`` (supplement B's sizes) or
            ``tiny`` (tests and smoke runs).
        gat, edgeconv, gru, skip: ablation switches (paper Table 3): the graph attention layer,
            the edge convolution, the GRU (else a linear map gives the N + 1 embeddings), the
            U-Net's skip connections.
        subgraphs: AVSGS's GRU recurrence ``i`` reads the embedding of its own sub-graph
            (principal object ``i`` and its context nodes; the background node for the last) in
            place of the whole graph's, which ties output ``i`` to object ``i``; ``false`` is
            the paper's eq. 1, every recurrence reading the pooled graph (``docs/model.md``).
        residual: AVSGS's graph attention layer adds a linear map of each node's own feature
            (PyG's ``GATConv(residual=True)``), so the nodes of a fully connected graph keep
            their own identity; ``false`` as in the paper (``docs/model.md``).
        subgraph_context: with ``subgraphs``, recurrence ``i`` also reads the readout of object
            ``i``'s context nodes (``true``), or only object ``i``'s node feature after the graph
            layers, where its context enters through attention (``false``).
    """

    name: Literal["avsgs", "coseparation", "frame", "audio_only", "sobb"]
    preset: Literal["small", "paper", "tiny"]
    gat: bool
    edgeconv: bool
    gru: bool
    skip: bool
    subgraphs: bool = False
    residual: bool = False
    subgraph_context: bool = True


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """``train``.

    Args:
        recipe: ``paper`` or ``reference`` (every point of the paper-vs-code table, docs/model.md).
        steps: optimizer steps (fixed: reproducible weights).
        batch_size: mixtures per step, over all processes.
        lr_visual, lr_separator, lr_classifier: Adam learning rates of the three parameter groups
            (graph encoder + GRU, U-Net, classifier).
        weight_decay: Adam weight decay (1e-4 in the paper).
        lr_step, lr_gamma: with ``schedule: step``, the rates are multiplied by ``lr_gamma``
            every ``lr_step`` steps.
        consistency, coseparation, orthogonality: loss switches (ablations).
        log_every: steps between logged (averaged) losses.
        val_every: steps between validations; the best validation SDR picks the model.
        val_mixtures: size of the fixed list of validation mixtures.
        checkpoint_every: steps between state-file writes.
        workers: data-loader processes per training process (0: load in the main process).
        threads: torch CPU threads per process (pinned: the weights depend on it).
        window: samples per training window (65,535, about 6 s at 11,025 Hz, in the paper); its
            STFT frames (``window // 256 + 1``) must be a multiple of ``2 ** levels`` of the
            U-Net (128): 32,767 or 65,535. The model keeps it; evaluation separates in windows of
            the same length.
        schedule: ``step`` (the paper's: ``lr_step``, ``lr_gamma``) or ``cosine`` (the rates
            fall along a half cosine from their value to 0 at ``steps``).
        gain: ``[low, high]``: each training clip's window is scaled by a gain drawn uniformly
            from this range before mixing (the released code: [0.5, 1.5]; the paper does not
            say); ``[1, 1]`` mixes the clips at their own levels. Validation never scales.
    """

    recipe: Literal["paper", "reference"]
    steps: int
    batch_size: int
    lr_visual: float
    lr_separator: float
    lr_classifier: float
    weight_decay: float
    lr_step: int
    lr_gamma: float
    consistency: bool
    coseparation: bool
    orthogonality: bool
    log_every: int
    val_every: int
    val_mixtures: int
    checkpoint_every: int
    workers: int
    threads: int
    window: int = 65535
    schedule: Literal["step", "cosine"] = "step"
    gain: list[float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        for key in (
            "steps",
            "batch_size",
            "lr_step",
            "log_every",
            "val_every",
            "checkpoint_every",
            "threads",
            "window",
        ):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1")
        if self.val_mixtures < 1 or self.workers < 0:
            raise ValueError("val_mixtures must be >= 1 and workers >= 0")
        check_gain(self.gain)


# Options added after states and checkpoints were made: at their default (the model and the
# training as they were before the option) they are left out of the model's config and of the
# training state's key, so what was made before them stays valid.
LATER_OPTIONS = ("residual", "subgraph_context")  # model
LATER_TRAIN_OPTIONS = ("gain",)


def model_config(
    params: ModelParams,
    recipe_name: str,
    node_channels: int,
    n_classes: int,
    n_slots: int,
    crop_size: int = 0,
) -> dict:
    """The separator's constructor arguments from the preset, the recipe and the ablations
    (``crop_size``: node features are RGB crops of that side, from the proposals backend)."""
    recipe = RECIPES[recipe_name]
    config = {**PRESETS[params.preset]}
    if recipe_name == "reference" and params.preset == "paper":
        config["hidden"] = 256  # the released code: GAT 4 x 64 -> EdgeConv 256
    config = {
        "node_channels": node_channels,
        "n_classes": n_classes,
        "n_slots": n_slots,
        **config,
        "aggr": recipe.aggr,
        "readout": recipe.readout,
        "normalize": recipe.normalize,
        "gat": params.gat,
        "edgeconv": params.edgeconv,
        "gru": params.gru,
        "skip": params.skip,
        "subgraphs": params.subgraphs,
        "residual": params.residual,
        "subgraph_context": params.subgraph_context,
        "crop_size": crop_size,
    }
    if params.name not in SEPARATORS:
        raise PipelineError(
            f"model.name {params.name!r} is not a separator; known: {', '.join(sorted(SEPARATORS))}"
        )
    takes = inspect.signature(SEPARATORS[params.name]).parameters  # a baseline takes fewer
    return {  # LATER_OPTIONS at their default are left out
        k: v
        for k, v in config.items()
        if k in takes and not (k in LATER_OPTIONS and v == takes[k].default)
    }


def crop_size(attrs: dict) -> int:
    """The side of the RGB crops a graph store's node features are (the proposals backend), or
    0 for a detector's features."""
    detect = (attrs.get("detections") or {}).get("params") or {}
    return int(detect.get("crop", 0)) if detect.get("backend") == "proposals" else 0


class StepBatches(torch.utils.data.Sampler):
    """Per step, this rank's share of the global batch's item indices, from ``start`` on."""

    def __init__(self, start: int, steps: int, batch: int, rank: int, world: int):
        self.start, self.steps, self.local = start, steps, batch // world
        self.batch, self.rank = batch, rank

    def __len__(self) -> int:
        return self.steps - self.start

    def __iter__(self):
        for step in range(self.start, self.steps):
            first = step * self.batch + self.rank * self.local
            yield list(range(first, first + self.local))


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
        permute = getattr(model, "permutation_invariant", False)
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


def _state_key(
    config: dict, params: TrainParams, seed: int, data_sha: list[str], model: torch.nn.Module
) -> str:
    """What a state file must match to be resumed: the model's settings and the shapes of its
    weights (so a code change to the architecture under the same params starts afresh), the
    training params that shape the weights, the seed and the data."""
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    volatile = {"workers", "checkpoint_every", "log_every"}  # do not change the weights
    if params.schedule == "step":  # nor does the step count, unless the schedule spans it
        volatile.add("steps")
    defaults = {f.name: f.default for f in dataclasses.fields(params)}  # (sequences, as tuples)
    volatile |= {k for k in LATER_TRAIN_OPTIONS if tuple(getattr(params, k)) == tuple(defaults[k])}
    kept = {k: v for k, v in dataclasses.asdict(params).items() if k not in volatile}
    blob = json.dumps(
        {"config": config, "shapes": shapes, "train": kept, "seed": seed, "data": data_sha},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _rng_state() -> dict[str, Any]:
    # Data sampling is keyed by (seed, item), not by a generator's state; torch's global generator
    # is the only RNG whose state a step can consume (e.g. by a dropout layer).
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def train(
    graphs_path: str | Path,
    audio_path: str | Path,
    params: TrainParams,
    model_params: ModelParams,
    *,
    seed: int,
    sample_rate: int,
    state_path: str | Path,
    model_out: str | Path | None = None,
    live_dir: str | Path | None = None,
    stop_after: int | None = None,
    device: str = "auto",
) -> dict[str, Any] | None:
    """Train (or resume) and write the best model; returns the metrics on rank 0.

    ``stop_after`` ends the run after that many steps of this call (tests use it to simulate an
    interruption); ``device`` is ``base.device`` (:func:`pipeline.device.resolve_device`)."""
    t0 = time.perf_counter()
    torch.set_num_threads(params.threads)
    rank, world = rank_and_world()
    if params.batch_size % world:
        raise PipelineError(
            f"train.batch_size {params.batch_size} is not divisible by {world} processes"
        )
    device = resolve_device(device, rank)
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    graphs, audio = GraphStore(graphs_path), AudioStore(audio_path)
    if audio.sample_rate != sample_rate:
        raise PipelineError(
            f"{audio_path} is at {audio.sample_rate} Hz, base.sample_rate is {sample_rate}"
        )
    cfg = SpecConfig(sample_rate=sample_rate, samples=params.window)
    recipe = RECIPES[params.recipe]
    splits = {s: [c for c in graphs.ids(s) if c in audio] for s in ("train", "val")}
    if len(splits["train"]) < 2 or len(splits["val"]) < 2:
        raise PipelineError(
            f"training needs >= 2 train and >= 2 val clips with graphs and audio, have "
            f"{len(splits['train'])} and {len(splits['val'])}"
        )
    label_names = graphs.label_names
    config = model_config(
        model_params,
        params.recipe,
        int(graphs.attrs["feature_dim"]),
        len(label_names) + 1,
        int(graphs.attrs["max_principal"]),
        crop_size(graphs.attrs),
    )
    torch.manual_seed(seed)
    model = build_separator(model_params.name, config).to(device)
    multiple = 2**model.unet.levels
    if cfg.frames % multiple:
        raise PipelineError(
            f"train.window {params.window} gives {cfg.frames} STFT frames, which the U-Net needs "
            f"to be a multiple of {multiple}: use {multiple * cfg.hop} x 2^k - 1 samples "
            f"(e.g. 32767 or 65535)"
        )
    groups = model.param_groups()
    lrs = {
        "visual": params.lr_visual,
        "separator": params.lr_separator,
        "classifier": params.lr_classifier,
    }
    optimizer = torch.optim.Adam(
        [{"params": groups[k], "lr": lrs[k], "name": k} for k in groups],
        betas=(0.9, 0.999),
        weight_decay=params.weight_decay,
    )
    scheduler = (
        torch.optim.lr_scheduler.StepLR(optimizer, params.lr_step, params.lr_gamma)
        if params.schedule == "step"
        else torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, params.steps)
    )
    key = _state_key(
        config, params, seed, [io.sha256_file(graphs_path), io.sha256_file(audio_path)], model
    )
    start, history, best = 0, [], {"step": 0, "sdr": -float("inf"), "state_dict": None}
    state_path = Path(state_path)
    if state_path.is_file():
        state = io.load_torch(
            state_path,
            "training state",
            "delete it to start training afresh (`rm " + str(state_path) + "`), then rerun",
        )
        same = state.get("schema_version") == STATE_SCHEMA and state.get("key") == key
        if same and state["step"] <= params.steps:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"]["torch"])
            if "cuda" in state["rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
            start, history, best = state["step"], state["history"], state["best"]
            log.info("train: resuming from step %d of %s", start, state_path)
        else:
            log.info(
                "train: %s was made with other settings or data, or past train.steps; "
                "starting afresh",
                state_path,
            )
    if start >= params.steps:
        log.info("train: already at step %d of %d", start, params.steps)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=not params.consistency,
        )
    validation = (  # only rank 0 validates
        Validation(
            graphs,
            audio,
            validation_pairs(graphs, audio, splits["val"], params.val_mixtures, cfg.samples, seed),
            recipe,
            cfg,
            params.batch_size,
        )
        if rank == 0
        else None
    )
    dataset = MixtureDataset(
        graphs,
        audio,
        splits["train"],
        cfg.samples,
        (seed, 0),
        params.steps * params.batch_size,
        tuple(params.gain),
    )
    end = params.steps if stop_after is None else min(params.steps, start + stop_after)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=StepBatches(start, end, params.batch_size, rank, world),
        collate_fn=collate,
        num_workers=params.workers,
    )
    live = _live(live_dir, history) if rank == 0 and live_dir else None
    use = (params.consistency, params.coseparation, params.orthogonality)
    running: dict[str, list[float]] = {}
    model.train()
    bar = tqdm(total=end - start, desc="train", unit="step", mininterval=5, disable=rank > 0)
    step = resumed_at = start
    steps_timed, t_loop = 0, time.perf_counter()
    for batch in loader:
        out = compute_losses(
            net,
            {
                **batch,
                "wav": batch["wav"].to(device),
                "graphs": batch["graphs"].to(device),
                "mixture": batch["mixture"].to(device),
            },
            recipe,
            cfg,
            use,
        )
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        optimizer.step()
        scheduler.step()
        step += 1
        steps_timed += 1
        bar.update()
        for k, v in out.items():
            running.setdefault(k, []).append(float(v.detach()))
        row: dict[str, Any] = {}
        if step % params.log_every == 0 or step == params.steps:
            row = {f"train/{k}": float(np.mean(v)) for k, v in running.items()}
            running = {}
        if rank == 0 and (step % params.val_every == 0 or step == params.steps):
            val = validation(model, device)
            row.update({"val/sdr": val["sdr"], "val/sdr_mixture": val["sdr_mixture"]})
            if val["sdr"] > best["sdr"]:
                best = {
                    "step": step,
                    "sdr": val["sdr"],
                    "state_dict": copy.deepcopy(model.state_dict()),
                    "validation": val,
                }
            bar.set_postfix(val_sdr=f"{val['sdr']:.2f}")
        if row:
            row["step"] = step
            history.append(row)
            if live is not None:
                _log_row(live, row)
        if step % params.checkpoint_every == 0 or step == end:
            if rank == 0:
                _save_state(state_path, key, model, optimizer, scheduler, step, history, best)
            if world > 1:
                torch.distributed.barrier()
    bar.close()
    seconds = time.perf_counter() - t_loop
    if live is not None:
        live.end()
    if rank != 0 or step < params.steps:
        return None
    if best["state_dict"] is None:  # resumed at the end with nothing new: use the last weights
        best = {**best, "state_dict": model.state_dict()}
    final = best.get("validation") or validate_best(model, best, validation, device)
    if model_out is not None:
        model.load_state_dict(best["state_dict"])
        save_separator(
            model_out,
            model,
            {
                "label_names": label_names,
                "spec": dataclasses.asdict(cfg),
                "recipe": params.recipe,
                "step": best["step"],
                "val_sdr": best["sdr"],
            },
        )
    last = next((h for h in reversed(history) if "train/loss" in h), {})
    on_gpu = {}
    if device.type == "cuda":
        on_gpu = {"peak_gpu_GiB": round(torch.cuda.max_memory_allocated(device) / 2**30, 3)}
    return {
        **on_gpu,
        "device": device.type,
        "steps": params.steps,
        "best_step": best["step"],
        "val_sdr": round(final["sdr"], 3),
        "val_sdr_mixture": round(final["sdr_mixture"], 3),
        "val_sdri": round(final["sdr"] - final["sdr_mixture"], 3),
        "val_pairs": final["pairs"],
        "val_skipped": final["skipped"],
        "final_losses": {
            k.split("/")[1]: round(v, 4) for k, v in last.items() if k.startswith("train/")
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "preset": model_params.preset,
        "recipe": params.recipe,
        "minutes": round((time.perf_counter() - t0) / 60, 2),  # this run's, from resumed_at_step
        "steps_per_second": round(steps_timed / seconds, 3) if steps_timed else None,
        "resumed_at_step": resumed_at,
        "processes": world,
    }


def validate_best(model, best, validation: Validation, device) -> dict:
    """The validation figures of the selected weights (when the run did not keep them: a state
    file from before they were kept, or a run resumed at its end)."""
    current = copy.deepcopy(model.state_dict())
    model.load_state_dict(best["state_dict"])
    out = validation(model, device)
    model.load_state_dict(current)
    return out


def _save_state(path, key, model, optimizer, scheduler, step, history, best) -> None:
    payload = {
        "schema_version": STATE_SCHEMA,
        "key": key,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "rng": _rng_state(),
        "history": history,
        "best": best,
    }
    # To an open file: given a path, torch.save names the zip records after the (random, temporary)
    # file name, so equal weights would get different bytes and DVC would rerun what follows.
    with io.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)


def _live(live_dir, history):
    """A DVCLive logger with the history replayed (a resumed run's curves start at step 0)."""
    from dvclive import Live
    from scmrepo.exceptions import SCMError

    class _Live(Live):
        def _init_dvc(self):
            # DVCLive 3 reads HEAD before it checks that the repository has a commit, so it
            # raises in a fresh `git init`. Log the curves without experiment tracking there.
            try:
                super()._init_dvc()
            except SCMError:
                self._dvc_repo, self._save_dvc_exp = None, False
                self._exp_name = self._exp_name or "workspace"
                self._dvc_file = self._init_dvc_file()

    live = _Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)
    for row in history:
        _log_row(live, row)
    return live


def _log_row(live, row: dict[str, Any]) -> None:
    live.step = row["step"]
    for k, v in row.items():
        if k != "step" and np.isfinite(v):
            live.log_metric(k, v)
    live.next_step()
