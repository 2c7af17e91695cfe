"""Training: mix-and-separate over seeded pairs of training clips, validated on a fixed list of
validation mixtures, resumable from one state file, and the same code under ``torchrun`` (DDP).

The state file (``--state``) holds everything needed to continue exactly: the model, optimizer
and scheduler states, the step, the RNG states, the logged history and the best model so far. It
is rewritten atomically every ``train.checkpoint_every`` steps; a rerun with the same settings and
data resumes from it (and one with other settings, or a state of another schema, starts afresh,
saying so).

:func:`train` is five steps, each a function a test can call: :func:`build` (stores, model,
optimizer), :func:`resume` (the state file), :func:`run_steps` (the loop, with its validations
and state writes), and :func:`final_metrics` (the selected model's checkpoint and figures).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
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
from pipeline.separation.base import Separator
from pipeline.separation.data import MixtureDataset, collate, validation_pairs
from pipeline.separation.model import ModelParams, build_separator, model_config, save_separator
from pipeline.separation.spectrogram import SpecConfig
from pipeline.separation.step import RECIPES, Recipe, compute_losses
from pipeline.separation.validation import Validation

log = logging.getLogger(__name__)
STATE_SCHEMA = 2  # 2: the model's config holds every argument; no later-option exceptions


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


PACKAGE = Path(__file__).resolve().parents[1]  # this checkout's ``pipeline`` package


def code_digest(root: Path = PACKAGE) -> str:
    """sha256 of the ``pipeline`` package's Python sources (``root``): a state file made by other
    code is not resumed. DVC re-runs training when its code changes, but the state file is a
    persistent output: without this, a checkout of newer code would "resume" a finished run of
    the older code and hand on its weights as the new code's."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _state_key(
    config: dict, params: TrainParams, seed: int, data_sha: list[str], model: torch.nn.Module
) -> str:
    """What a state file must match to be resumed: the model's settings and the shapes of its
    weights, the training params that shape the weights, the seed, the data and the code
    (:func:`code_digest`)."""
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    volatile = {"workers", "checkpoint_every", "log_every"}  # do not change the weights
    if params.schedule == "step":  # nor does the step count, unless the schedule spans it
        volatile.add("steps")
    kept = {k: v for k, v in dataclasses.asdict(params).items() if k not in volatile}
    blob = json.dumps(
        {
            "config": config,
            "shapes": shapes,
            "train": kept,
            "seed": seed,
            "data": data_sha,
            "code": code_digest(),
        },
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


@dataclasses.dataclass
class Setup:
    """What a training run is built from: the stores, the model and its optimizer, the key a
    state file must match, and where this process stands (``rank`` of ``world``)."""

    graphs: GraphStore
    audio: AudioStore
    splits: dict[str, list[str]]
    cfg: SpecConfig
    recipe: Recipe
    model: Separator
    optimizer: torch.optim.Optimizer
    scheduler: Any
    key: str
    device: torch.device
    rank: int
    world: int


@dataclasses.dataclass
class Progress:
    """Where a run stands: the last step done, the logged rows, and the best weights so far
    (``best["validation"]``: their validation figures)."""

    step: int = 0
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    best: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"step": 0, "sdr": -float("inf"), "state_dict": None}
    )


def build(
    params: TrainParams,
    model_params: ModelParams,
    stores: tuple[str | Path, str | Path],
    *,
    seed: int,
    sample_rate: int,
    device: str = "auto",
) -> Setup:
    """Open the ``stores`` (graphs, audio), check them against the params, and build the model
    (seeded), its optimizer and schedule."""
    graphs_path, audio_path = stores
    torch.set_num_threads(params.threads)
    rank, world = rank_and_world()
    if params.batch_size % world:
        raise PipelineError(
            f"train.batch_size {params.batch_size} is not divisible by {world} processes"
        )
    dev = resolve_device(device, rank)
    torch.use_deterministic_algorithms(True, warn_only=dev.type == "cuda")
    graphs, audio = GraphStore(graphs_path), AudioStore(audio_path)
    if audio.sample_rate != sample_rate:
        raise PipelineError(
            f"{audio_path} is at {audio.sample_rate} Hz, base.sample_rate is {sample_rate}"
        )
    cfg = SpecConfig(sample_rate=sample_rate, samples=params.window)
    splits = {s: [c for c in graphs.ids(s) if c in audio] for s in ("train", "val")}
    if len(splits["train"]) < 2 or len(splits["val"]) < 2:
        raise PipelineError(
            f"training needs >= 2 train and >= 2 val clips with graphs and audio, have "
            f"{len(splits['train'])} and {len(splits['val'])}"
        )
    config = model_config(
        model_params,
        params.recipe,
        int(graphs.attrs["feature_dim"]),
        len(graphs.label_names) + 1,
        int(graphs.attrs["max_principal"]),
        graphs.crop_side,
        graphs.edge_dim,
    )
    torch.manual_seed(seed)
    model = build_separator(model_params.name, config).to(dev)
    multiple = 2**model.unet.levels
    if cfg.frames % multiple:
        raise PipelineError(
            f"train.window {params.window} gives {cfg.frames} STFT frames, which the U-Net needs "
            f"to be a multiple of {multiple}: use {multiple * cfg.hop} x 2^k - 1 samples "
            f"(e.g. 32767 or 65535)"
        )
    optimizer, scheduler = _optimizer(model, params)
    data_sha = [io.sha256_file(graphs_path), io.sha256_file(audio_path)]
    key = _state_key(config, params, seed, data_sha, model)
    return Setup(
        graphs, audio, splits, cfg, RECIPES[params.recipe], model, optimizer, scheduler, key,
        dev, rank, world,
    )  # fmt: skip


def _optimizer(model: Separator, params: TrainParams):
    """Adam over the model's three parameter groups, each at its rate, and the schedule."""
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
    return optimizer, scheduler


def resume(setup: Setup, state_path: str | Path, steps: int) -> Progress:
    """The progress of a state file made by the same settings and data (its weights, optimizer,
    schedule and RNG loaded into ``setup``), or a fresh start."""
    state_path = Path(state_path)
    if not state_path.is_file():
        return Progress()
    state = io.load_torch(
        state_path,
        "training state",
        "delete it to start training afresh (`rm " + str(state_path) + "`), then rerun",
    )
    same = state.get("schema_version") == STATE_SCHEMA and state.get("key") == setup.key
    if not same or state["step"] > steps:
        log.info(
            "train: %s was made with other settings, data or code, or past train.steps; "
            "starting afresh",
            state_path,
        )
        return Progress()
    setup.model.load_state_dict(state["model"])
    setup.optimizer.load_state_dict(state["optimizer"])
    setup.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    log.info("train: resuming from step %d of %s", state["step"], state_path)
    return Progress(state["step"], state["history"], state["best"])


def _parallel(setup: Setup, params: TrainParams) -> torch.nn.Module:
    """The model as the loop calls it: wrapped for DDP when several processes train."""
    if setup.world == 1:
        return setup.model
    return torch.nn.parallel.DistributedDataParallel(
        setup.model,
        device_ids=[setup.device.index] if setup.device.type == "cuda" else None,
        find_unused_parameters=not params.consistency,
    )


def validation_of(setup: Setup, params: TrainParams, seed: int) -> Validation | None:
    """The fixed validation mixtures (rank 0 only validates)."""
    if setup.rank != 0:
        return None
    pairs = validation_pairs(
        setup.graphs, setup.audio, setup.splits["val"], params.val_mixtures,
        setup.cfg.samples, seed,
    )  # fmt: skip
    return Validation(setup.graphs, setup.audio, pairs, setup.recipe, setup.cfg, params.batch_size)


def loader(setup: Setup, params: TrainParams, seed: int, start: int, end: int):
    """This process's share of the batches of steps ``start`` to ``end``."""
    dataset = MixtureDataset(
        setup.graphs,
        setup.audio,
        setup.splits["train"],
        setup.cfg.samples,
        (seed, 0),
        params.steps * params.batch_size,
    )
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=StepBatches(start, end, params.batch_size, setup.rank, setup.world),
        collate_fn=collate,
        num_workers=params.workers,
    )


def run_steps(
    setup: Setup,
    params: TrainParams,
    progress: Progress,
    batches,
    validation: Validation | None,
    state_path: str | Path,
    live=None,
) -> int:
    """Train on ``batches`` from ``progress.step`` on: log averaged losses, validate and keep the
    best weights (rank 0), write the state file every ``checkpoint_every`` steps and at the end.
    Returns the steps done."""
    net = _parallel(setup, params)
    use = (params.consistency, params.coseparation, params.orthogonality)
    running: dict[str, list[float]] = {}
    setup.model.train()
    bar = tqdm(total=len(batches), desc="train", unit="step", mininterval=5, disable=setup.rank > 0)
    done = 0
    for batch in batches:
        batch = {**batch, **{k: batch[k].to(setup.device) for k in ("wav", "graphs", "mixture")}}
        out = compute_losses(net, batch, setup.recipe, setup.cfg, use)
        setup.optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        setup.optimizer.step()
        setup.scheduler.step()
        progress.step += 1
        done += 1
        bar.update()
        for k, v in out.items():
            running.setdefault(k, []).append(float(v.detach()))
        step, row = progress.step, {}
        if step % params.log_every == 0 or step == params.steps:
            row = {f"train/{k}": float(np.mean(v)) for k, v in running.items()}
            running = {}
        if validation is not None and (step % params.val_every == 0 or step == params.steps):
            row.update(_validate(setup, progress, validation))
            bar.set_postfix(val_sdr=f"{row['val/sdr']:.2f}")
        if row:
            progress.history.append({**row, "step": step})
            if live is not None:
                _log_row(live, progress.history[-1])
        if step % params.checkpoint_every == 0 or done == len(batches):
            if setup.rank == 0:
                _save_state(state_path, setup, progress)
            if setup.world > 1:
                torch.distributed.barrier()
    bar.close()
    return done


def _validate(setup: Setup, progress: Progress, validation: Validation) -> dict[str, float]:
    """Validate the current weights; keep them as the best when they score above it."""
    val = validation(setup.model, setup.device)
    if val["sdr"] > progress.best["sdr"]:
        progress.best = {
            "step": progress.step,
            "sdr": val["sdr"],
            "state_dict": copy.deepcopy(setup.model.state_dict()),
            "validation": val,
        }
    return {"val/sdr": val["sdr"], "val/sdr_mixture": val["sdr_mixture"]}


def final_metrics(
    setup: Setup,
    params: TrainParams,
    model_params: ModelParams,
    progress: Progress,
    validation: Validation,
    model_out: str | Path | None,
) -> dict[str, Any]:
    """Write the best weights' checkpoint (with the label names, spectrogram settings and
    provenance) and return the run's figures (the caller adds its timings)."""
    model, best = setup.model, progress.best
    if best["state_dict"] is None:  # resumed at the end with nothing new: use the last weights
        best = {**best, "state_dict": model.state_dict()}
    final = best.get("validation") or validate_best(model, best, validation, setup.device)
    if model_out is not None:
        model.load_state_dict(best["state_dict"])
        extra = {
            "label_names": setup.graphs.label_names,
            "spec": dataclasses.asdict(setup.cfg),
            "recipe": params.recipe,
            "step": best["step"],
            "val_sdr": best["sdr"],
        }
        save_separator(model_out, model, extra)
    last = next((h for h in reversed(progress.history) if "train/loss" in h), {})
    on_gpu = {}
    if setup.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(setup.device) / 2**30
        on_gpu = {"peak_gpu_GiB": round(peak, 3)}
    return {
        **on_gpu,
        "device": setup.device.type,
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
    }


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
    stores = (graphs_path, audio_path)
    setup = build(params, model_params, stores, seed=seed, sample_rate=sample_rate, device=device)
    progress = resume(setup, state_path, params.steps)
    start = progress.step
    if start >= params.steps:
        log.info("train: already at step %d of %d", start, params.steps)
    validation = validation_of(setup, params, seed)
    end = params.steps if stop_after is None else min(params.steps, start + stop_after)
    live = _live(live_dir, progress.history) if setup.rank == 0 and live_dir else None
    t_loop = time.perf_counter()
    done = run_steps(
        setup, params, progress, loader(setup, params, seed, start, end), validation,
        state_path, live,
    )  # fmt: skip
    seconds = time.perf_counter() - t_loop
    if live is not None:
        live.end()
    if setup.rank != 0 or progress.step < params.steps:
        return None
    return {
        **final_metrics(setup, params, model_params, progress, validation, model_out),
        "minutes": round((time.perf_counter() - t0) / 60, 2),  # this run's, from resumed_at_step
        "steps_per_second": round(done / seconds, 3) if done else None,
        "resumed_at_step": start,
        "processes": setup.world,
    }


def validate_best(model, best, validation: Validation, device) -> dict:
    """The validation figures of the selected weights (when the run did not keep them: a state
    file from before they were kept, or a run resumed at its end)."""
    current = copy.deepcopy(model.state_dict())
    model.load_state_dict(best["state_dict"])
    out = validation(model, device)
    model.load_state_dict(current)
    return out


def _save_state(path, setup: Setup, progress: Progress) -> None:
    payload = {
        "schema_version": STATE_SCHEMA,
        "key": setup.key,
        "model": setup.model.state_dict(),
        "optimizer": setup.optimizer.state_dict(),
        "scheduler": setup.scheduler.state_dict(),
        "step": progress.step,
        "rng": _rng_state(),
        "history": progress.history,
        "best": progress.best,
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
