"""DVC stage ``audio``: every usable clip's waveform, decoded once into one HDF5 store for training
and evaluation to read windows from."""

import _checkout  # noqa: F401  (first: this checkout's pipeline package)

from pipeline import runtime

runtime.tune_process(reexec=__name__ == "__main__")  # first: allocator and OpenMP at start


from pipeline import io, stage
from pipeline.download.store import MediaStore, read_status, usable
from pipeline.separation.audio_store import pack_audio

PARAMS = {"base.sample_rate": int}


def add_args(parser):
    parser.add_argument("--status", required=True, help="the download status manifest")
    parser.add_argument("--media", required=True, help="the downloaded media folder")
    parser.add_argument("--out", required=True, help="the audio store (.h5)")
    parser.add_argument("--metrics", required=True, help="the audio metrics (JSON)")


def body(params, args):
    ok = {c: r["duration"] for c, r in usable(read_status(args.status)).items()}
    clips = {cid: MediaStore(args.media).audio(cid) for cid in ok}
    metrics = pack_audio(clips, args.out, params["base.sample_rate"], durations=ok)
    io.write_json(args.metrics, metrics)


if __name__ == "__main__":
    stage.main("audio", PARAMS, add_args, body)
