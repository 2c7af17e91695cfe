"""DVC stage ``download``: fetch, cut and canonicalise every candidate clip of the manifest."""

import _checkout  # noqa: F401  (first: this checkout's pipeline package)

from pipeline import runtime

runtime.tune_process(reexec=__name__ == "__main__")  # first: allocator and OpenMP at start

from pipeline import io, stage
from pipeline.download.run import DownloadParams, check_enough, download_all
from pipeline.download.store import write_status

PARAMS = {"base.sample_rate": int, "download": DownloadParams}


def add_args(parser):
    parser.add_argument("--manifest", required=True, help="the labels manifest")
    parser.add_argument("--source", required=True, help="the source folder (relative media URLs)")
    parser.add_argument("--media", required=True, help="the media folder (persistent)")
    parser.add_argument("--status", required=True, help="the status manifest (JSON Lines)")
    parser.add_argument("--metrics", required=True, help="the download metrics (JSON)")


def body(params, args):
    rows, metrics = download_all(
        list(io.read_jsonl(args.manifest)),
        params["download"],
        params["base.sample_rate"],
        args.media,
        args.source,
    )
    write_status(args.status, rows)
    io.write_json(args.metrics, metrics)
    check_enough(metrics, params["download"])


if __name__ == "__main__":
    stage.main("download", PARAMS, add_args, body)
