"""DVC stage ``train``: the separator, trained by mix-and-separate (resumable; runs the same under
``torchrun --nproc_per_node=N stages/train.py ...``)."""

import _checkout  # noqa: F401  (first: this checkout's pipeline package)

from pipeline import runtime

runtime.tune_process(reexec=__name__ == "__main__")  # first: allocator and OpenMP at start

from pipeline import io, stage
from pipeline.separation.model import ModelParams
from pipeline.separation.train import TrainParams, train

PARAMS = {
    "base.seed": int,
    "base.sample_rate": int,
    "base.device": str,
    "model": ModelParams,
    "train": TrainParams,
}


def add_args(parser):
    parser.add_argument("--graphs", required=True, help="the graph store (.h5)")
    parser.add_argument("--audio", required=True, help="the audio store (.h5)")
    parser.add_argument("--state", required=True, help="the resumable training state (persistent)")
    parser.add_argument("--out", required=True, help="the selected model's checkpoint")
    parser.add_argument("--live", required=True, help="DVCLive folder for the training curves")
    parser.add_argument("--metrics", required=True, help="the train metrics (JSON)")


def body(params, args):
    metrics = train(
        args.graphs,
        args.audio,
        params["train"],
        params["model"],
        seed=params["base.seed"],
        sample_rate=params["base.sample_rate"],
        state_path=args.state,
        model_out=args.out,
        live_dir=args.live,
        device=params["base.device"],
    )
    if metrics is not None:  # rank 0
        io.write_json(args.metrics, metrics)


if __name__ == "__main__":
    stage.main("train", PARAMS, add_args, body)
