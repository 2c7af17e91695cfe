"""Gradients of training step 0 on this rank's share of the batch, averaged by DDP when run under
torchrun; rank 0 saves them. Then, given the train stage's arguments after ``--``, the train
stage itself in the same processes (one torchrun launch for both: each start costs the imports of
torch and PyG). Usage: ddp_grads.py GRAPHS AUDIO OUT [-- TRAIN-STAGE-ARGS...]."""

import sys

import torch

from pipeline.distributed import rank_and_world
from pipeline.graphs.store import GraphStore
from pipeline.separation.audio_store import AudioStore
from pipeline.separation.data import MixtureDataset, collate
from pipeline.separation.model import ModelParams, build_separator, model_config
from pipeline.separation.spectrogram import SpecConfig
from pipeline.separation.step import RECIPES, compute_losses
from pipeline.separation.train import StepBatches


def main(graphs_path, audio_path, out):
    torch.set_num_threads(1)
    rank, world = rank_and_world()
    graphs, audio = GraphStore(graphs_path), AudioStore(audio_path)
    params = ModelParams.of("avsgs", "tiny")
    config = model_config(params, "paper", graphs.attrs["feature_dim"], 4, 2)
    torch.manual_seed(0)
    model = build_separator("avsgs", config).eval()  # BatchNorm on running stats: per-sample
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    cfg = SpecConfig()
    data = MixtureDataset(graphs, audio, graphs.ids("train"), cfg.samples, (0, 0), 4)
    (indices,) = list(StepBatches(0, 1, 4, rank, world))
    batch = collate([data[k] for k in indices])
    compute_losses(net, batch, RECIPES["paper"], cfg)["loss"].backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in model.named_parameters()}, out)
    if world > 1:
        torch.distributed.barrier()


if __name__ == "__main__":
    main(*sys.argv[1:4])
    if "--" in sys.argv:  # the stage as its __main__ runs it, less the allocator re-exec (which
        # would start this script again)
        from tests.conftest import run_stage

        sys.exit(run_stage("train", sys.argv[sys.argv.index("--") + 1 :]))
