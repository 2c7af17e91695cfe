"""DVC stage ``graphs``: a visual scene graph per clip with usable detections, into HDF5."""

import _checkout  # noqa: F401  (first: this checkout's pipeline package)

from pipeline import runtime

runtime.tune_process(reexec=__name__ == "__main__")  # first: allocator and OpenMP at start

from pipeline import io, stage
from pipeline.download.store import read_status
from pipeline.graphs.build import GraphsParams
from pipeline.graphs.class_map import ClassMapParams
from pipeline.graphs.run import build_all

PARAMS = {"base.seed": int, "base.device": str, "graphs": GraphsParams, "class_map": ClassMapParams}


def add_args(parser):
    parser.add_argument("--detections", required=True, help="the detections store (.zarr)")
    parser.add_argument("--status", required=True, help="the download status manifest")
    parser.add_argument("--detector", help="the detector checkpoint (background: random_crop)")
    parser.add_argument("--media", help="the downloaded media folder (background: random_crop)")
    parser.add_argument("--cache", help="background-crop features (persistent, resumable)")
    parser.add_argument("--depth", help="the depth store (.zarr; graphs.builder asmp25d)")
    parser.add_argument("--source", help="the source folder (graphs.motion.labels truth)")
    parser.add_argument("--out", required=True, help="the graph store (.h5)")
    parser.add_argument("--metrics", required=True, help="the graphs metrics (JSON)")
    parser.add_argument("--sizes", required=True, help="histogram of graph sizes (CSV plot)")


def body(params, args):
    metrics, sizes = build_all(
        args.detections,
        read_status(args.status),
        params["graphs"],
        params["class_map"],
        args.out,
        seed=params["base.seed"],
        detector=args.detector,
        media_dir=args.media,
        cache_dir=args.cache,
        depth=args.depth,
        source=args.source,
        device=params["base.device"],
    )
    io.write_json(args.metrics, metrics)
    io.write_csv(args.sizes, sizes, ["nodes", "graphs"])


if __name__ == "__main__":
    stage.main("graphs", PARAMS, add_args, body)
