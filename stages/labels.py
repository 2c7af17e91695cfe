"""DVC stage ``labels``: mine ASIW labels from the clip table's captions (or MUSIC categories)."""

import _checkout  # noqa: F401  (first: this checkout's pipeline package)

from pipeline import runtime

runtime.tune_process(reexec=__name__ == "__main__")  # first: allocator and OpenMP at start

from pipeline import io, stage
from pipeline.labels.dictionary import load_dictionary
from pipeline.labels.mine import LabelsParams, mine_labels
from pipeline.sources.table import read_table

PARAMS = {"labels": LabelsParams}


def add_args(parser):
    parser.add_argument("--clips", required=True, help="the source folder")
    parser.add_argument("--manifest", required=True, help="the labels manifest (JSON Lines)")
    parser.add_argument("--metrics", required=True, help="the labels metrics (JSON)")


def body(params, args):
    manifest, metrics = mine_labels(read_table(args.clips), params["labels"], load_dictionary())
    io.write_jsonl(args.manifest, manifest)
    io.write_json(args.metrics, metrics)


if __name__ == "__main__":
    stage.main("labels", PARAMS, add_args, body)
