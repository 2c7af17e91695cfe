"""DVC stage ``source``: fetch the selected source's metadata and write the clip table."""

from pipeline import stage
from pipeline.params import BaseParams
from pipeline.sources import SourceParams, build_source

PARAMS = {"base": BaseParams, "source": SourceParams}


def add_args(parser):
    parser.add_argument("--out", required=True, help="the source folder (clip table + raw files)")


def body(params, args):
    build_source(params["source"], params["base"], args.out)


if __name__ == "__main__":
    stage.main("source", PARAMS, add_args, body)
