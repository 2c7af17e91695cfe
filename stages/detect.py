"""DVC stage ``detect``: per-frame detections and box features of every usable clip, in Zarr.

Runs as one process, or sharded: ``torchrun --nproc_per_node=N stages/detect.py ...``.
"""

import _checkout  # noqa: F401  (first: this checkout's pipeline package)

from pipeline import runtime

runtime.tune_process(reexec=__name__ == "__main__")  # first: allocator and OpenMP at start

from pipeline import io, stage
from pipeline.detection.run import DetectParams, detect_all
from pipeline.download.store import read_status

PARAMS = {"base.device": str, "detect": DetectParams}


def add_args(parser):
    parser.add_argument("--status", required=True, help="the download status manifest")
    parser.add_argument("--media", required=True, help="the downloaded media folder")
    parser.add_argument("--detector", required=True, help="the detector checkpoint")
    parser.add_argument("--parts", required=True, help="per-clip parts (persistent, resumable)")
    parser.add_argument("--out", required=True, help="the detections store (.zarr)")
    parser.add_argument("--metrics", required=True, help="the detect metrics (JSON)")


def body(params, args):
    metrics = detect_all(
        read_status(args.status),
        args.media,
        args.detector,
        params["detect"],
        args.out,
        args.parts,
        device=params["base.device"],
    )
    if metrics is not None:  # rank 0
        io.write_json(args.metrics, metrics)


if __name__ == "__main__":
    stage.main("detect", PARAMS, add_args, body)
