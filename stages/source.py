"""DVC stage ``source``: fetch the selected source's metadata and write the clip table."""

import _checkout  # noqa: F401  (first: this checkout's pipeline package)

from pipeline import runtime

runtime.tune_process(reexec=__name__ == "__main__")  # first: allocator and OpenMP at start

from pipeline import stage
from pipeline.inputs import check_tracked
from pipeline.params import BaseParams
from pipeline.sources.run import SourceParams, build_source

PARAMS = {"base.seed": int, "base.sample_rate": int, "source": SourceParams}


def add_args(parser):
    parser.add_argument("--out", required=True, help="the source folder (clip table + raw files)")
    parser.add_argument(
        "--inputs", default="inputs/source", help="the folder of the user's own files"
    )


def body(params, args):
    if params["source"].name == "csv":
        check_tracked(params["source"].csv.path, "source.csv.path", args.inputs)
    base = BaseParams(seed=params["base.seed"], sample_rate=params["base.sample_rate"])
    build_source(params["source"], base, args.out)


if __name__ == "__main__":
    stage.main("source", PARAMS, add_args, body)
