"""DVC stage ``evaluate``: the trained separator on a fixed, seeded list of test pairs, beside the
mixture baseline and the ideal-mask ceilings, with an HTML report."""

import _checkout  # noqa: F401  (first: this checkout's pipeline package)

from pipeline import runtime

runtime.tune_process(reexec=__name__ == "__main__")  # first: allocator and OpenMP at start

from pipeline import io, stage
from pipeline.evaluation.report import write_report
from pipeline.evaluation.run import EvaluateParams, evaluate_all, write_outputs
from pipeline.graphs.store import GraphStore

PARAMS = {"base.seed": int, "base.device": str, "evaluate": EvaluateParams}


def add_args(parser):
    parser.add_argument("--model", required=True, help="the separator checkpoint")
    parser.add_argument("--graphs", required=True, help="the graph store (.h5)")
    parser.add_argument("--audio", required=True, help="the audio store (.h5)")
    parser.add_argument("--stems", help="the synthetic world's stems folder (within-clip scores)")
    parser.add_argument("--media", help="the downloaded media folder (key frames in the report)")
    parser.add_argument("--live", help="the training's DVCLive folder (curves in the report)")
    parser.add_argument("--pairs", required=True, help="the fixed list of test pairs (JSON)")
    parser.add_argument("--scores", required=True, help="per-pair scores (CSV)")
    parser.add_argument("--report", required=True, help="the HTML report's folder")
    parser.add_argument("--metrics", required=True, help="the evaluate metrics (JSON)")


def body(params, args):
    result = evaluate_all(
        args.model,
        args.graphs,
        args.audio,
        params["evaluate"],
        seed=params["base.seed"],
        stems_dir=args.stems,
        device=params["base.device"],
    )
    write_outputs(result, args.pairs, args.scores)
    write_report(
        args.report,
        result["metrics"],
        result["examples"],
        GraphStore(args.graphs),
        args.media,
        args.live,
    )
    io.write_json(args.metrics, result["metrics"])


if __name__ == "__main__":
    stage.main("evaluate", PARAMS, add_args, body)
