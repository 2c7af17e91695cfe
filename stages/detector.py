"""DVC stage ``detector``: make the detector checkpoint with the backend ``detector.kind``."""

import _checkout  # noqa: F401  (first: this checkout's pipeline package)

from pipeline import runtime

runtime.tune_process(reexec=__name__ == "__main__")  # first: allocator and OpenMP at start

from pipeline import io, stage
from pipeline.detection.backends import DetectorParams, make_detector
from pipeline.inputs import check_tracked

PARAMS = {"base.seed": int, "detector": DetectorParams}


def add_args(parser):
    parser.add_argument("--annotations", help="COCO box-annotation folder (kind: train)")
    parser.add_argument("--out", required=True, help="the detector checkpoint")
    parser.add_argument(
        "--inputs", default="inputs/detector", help="the folder of the user's own files"
    )
    parser.add_argument("--metrics", required=True, help="the detector metrics (JSON)")


def body(params, args):
    if params["detector"].kind == "file":
        for key in ("path", "classes"):
            value = getattr(params["detector"].file, key)
            check_tracked(value, f"detector.file.{key}", args.inputs)
    metrics = make_detector(
        params["detector"], args.out, annotations=args.annotations, seed=params["base.seed"]
    )
    io.write_json(args.metrics, metrics)


if __name__ == "__main__":
    stage.main("detector", PARAMS, add_args, body)
