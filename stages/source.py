"""DVC stage ``source``: fetch the selected source's metadata and write the clip table."""

from pipeline import stage
from pipeline.inputs import check_tracked
from pipeline.params import BaseParams
from pipeline.sources import SourceParams, build_source

PARAMS = {"base": BaseParams, "source": SourceParams}


def add_args(parser):
    parser.add_argument("--out", required=True, help="the source folder (clip table + raw files)")
    parser.add_argument("--inputs", required=True, help="the folder of the user's own files")


def body(params, args):
    if params["source"].name == "csv":
        check_tracked(params["source"].csv.path, "source.csv.path", args.inputs)
    build_source(params["source"], params["base"], args.out)


if __name__ == "__main__":
    stage.main("source", PARAMS, add_args, body)
