"""DVC stage ``depth``: registered monocular depth of every detected clip's sampled frames, in
Zarr (only when ``graphs.builder`` reads depth)."""

import _checkout  # noqa: F401  (first: this checkout's pipeline package)

from pipeline import runtime

runtime.tune_process(reexec=__name__ == "__main__")  # first: allocator and OpenMP at start

from pipeline import io, stage
from pipeline.depth.run import DepthParams, depth_all
from pipeline.download.store import read_status
from pipeline.errors import PipelineError
from pipeline.graphs.build import BUILDERS, READS_DEPTH

PARAMS = {
    "base.seed": int,
    "base.device": str,
    "depth": DepthParams,
    "graphs.builder": str,
    "graphs.motion.labels": str,
}


def add_args(parser):
    parser.add_argument("--status", required=True, help="the download status manifest")
    parser.add_argument("--media", required=True, help="the downloaded media folder")
    parser.add_argument("--source", help="the source folder (depth.backend oracle)")
    parser.add_argument("--detections", required=True, help="the detections store (.zarr)")
    parser.add_argument("--parts", required=True, help="per-clip raw maps (persistent, resumable)")
    parser.add_argument("--out", required=True, help="the depth store (.zarr)")
    parser.add_argument("--metrics", required=True, help="the depth metrics (JSON)")


def body(params, args):
    builder = params["graphs.builder"]
    if builder not in BUILDERS:
        raise PipelineError(f"graphs.builder {builder!r} is not one of {', '.join(BUILDERS)}")
    metrics = depth_all(
        read_status(args.status),
        args.detections,
        args.media,
        args.source,
        params["depth"],
        args.out,
        args.parts,
        needed_by=(
            f"graphs.builder {builder}"
            if builder in READS_DEPTH
            else "graphs.motion.labels derived"
            if params["graphs.motion.labels"] == "derived"
            else None
        ),
        seed=params["base.seed"],
        device=params["base.device"],
        optional=builder not in READS_DEPTH,
    )
    io.write_json(args.metrics, metrics)


if __name__ == "__main__":
    stage.main("depth", PARAMS, add_args, body)
