"""How true are the derived direction-of-motion labels? (the scenes world, against its truth)

Builds the default pipeline's graphs twice with motion labels, ``graphs.motion.labels: truth``
(the world's own displacement of the sounding object each principal box shows) and ``derived``
(the box tracked across the sampled frames, its depth from the depth stage's ``oracle``
backend, or with ``--relative`` the relative oracle registered back), and compares them window
by window for every slot that has both: accuracy in the 10- and 28-class schemes, each true
10-class label's recall, the majority-vote baseline, and how often each is labelled at all.

Usage::

    uv run python benchmarks/motion_labels.py [--data data] [--out /tmp/motion-labels] [--relative]

Figures: docs/depth.md, "Motion labels".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import yaml

from pipeline.depth.run import DepthParams, depth_all
from pipeline.download.store import read_status
from pipeline.graphs.build import GraphsParams
from pipeline.graphs.class_map import ClassMapParams
from pipeline.graphs.run import build_all
from pipeline.graphs.store import GraphStore
from pipeline.params import parse


def main(data: Path, out: Path, relative: bool) -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    depth = parse(DepthParams, params["depth"], "depth")
    depth = dataclasses.replace(
        depth, backend="oracle", oracle=dataclasses.replace(depth.oracle, relative=relative)
    )
    graphs = parse(GraphsParams, params["graphs"], "graphs")
    class_map = parse(ClassMapParams, params["class_map"], "class_map")
    status = read_status(data / "download" / "status.jsonl")
    det = data / "detect" / "detections.zarr"
    depth_all(
        status, det, data / "download" / "media", data / "source", depth, out / "depth.zarr",
        out / "parts", needed_by="benchmark", seed=0, device="cpu",
    )  # fmt: skip
    stores = {}
    for labels in ("truth", "derived"):
        p = dataclasses.replace(graphs, motion=dataclasses.replace(graphs.motion, labels=labels))
        build_all(
            det, status, p, class_map, out / f"{labels}.h5", seed=0,
            detector=data / "detector" / "detector.pt", media_dir=data / "download" / "media",
            cache_dir=data / "graphs" / "background", depth=out / "depth.zarr",
            source=data / "source",
        )  # fmt: skip
        stores[labels] = GraphStore(out / f"{labels}.h5")
    pairs = {10: [], 28: []}
    slots = windows = truth_known = derived_known = 0
    for cid in stores["truth"].clip_ids:
        true, ours = stores["truth"].read(cid), stores["derived"].read(cid)
        for s, label in enumerate(true["label"]):
            if label < 0:
                continue
            slots += 1
            windows += true["direction10"].shape[1]
            truth_known += int((true["direction10"][s] >= 0).sum())
            derived_known += int((ours["direction10"][s] >= 0).sum())
            for n in (10, 28):
                a, b = true[f"direction{n}"][s], ours[f"direction{n}"][s]
                both = (a >= 0) & (b >= 0)
                pairs[n] += list(zip(a[both].tolist(), b[both].tolist(), strict=True))
    report = {
        "slots": slots,
        "windows": windows,
        "truth_labelled": round(truth_known / windows, 3),
        "derived_labelled": round(derived_known / windows, 3),
        "compared": len(pairs[10]),
    }
    for n in (10, 28):
        a, b = np.array(pairs[n]).T
        counts = np.bincount(a, minlength=n)
        report[f"accuracy{n}"] = round(float((a == b).mean()), 3)
        report[f"majority{n}"] = round(float(counts.max() / len(a)), 3)
    a, b = np.array(pairs[10]).T
    report["recall10"] = {
        int(c): [round(float((b[a == c] == c).mean()), 3), int((a == c).sum())]
        for c in np.unique(a)
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/motion-labels"))
    parser.add_argument("--relative", action="store_true")
    args = parser.parse_args()
    main(args.data, args.out, args.relative)
