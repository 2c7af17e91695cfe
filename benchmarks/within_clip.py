"""Does a separator tie its outputs to the objects it was asked for? (the scenes world)

The evaluation's within-clip score (``evaluate.within_clip``) matches a clip's two stems to the
model's outputs by the best SI-SDR assignment, which hides whether output ``i`` is the sound of
the object in slot ``i``. Here the ground truth says which source each principal slot shows (its
key-frame box against the sources' boxes in ``truth/<clip_id>.npz``), so each two-source test
clip is scored twice: with the best assignment and with the slots' own (what a user who asks for
"the man with the trumpet" gets), and the share of clips where the two agree. Apart for clips
whose two sources share a class and clips whose sources differ. Scores are SI-SDR in dB of whole
10 s clips.

Usage::

    uv run python benchmarks/within_clip.py [data/train/model.pt] [--graphs data/graphs/graphs.h5]
        [--world data/source]

To score an experiment's model: ``dvc exp apply <name>`` first (and ``git checkout . && dvc
checkout`` after). Figures: docs/results.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from pipeline.evaluation.run import clip_estimates, si_sdr
from pipeline.graphs.roles import Role
from pipeline.graphs.store import GraphStore
from pipeline.scenes_truth import source_at
from pipeline.separation.model import load_separator
from pipeline.separation.spectrogram import SpecConfig
from pipeline.separation.step import RECIPES


def slot_sources(graph: dict, clip: dict, truth, fps: int) -> dict[int, int] | None:
    """Principal slot -> stem channel of the source its key-frame box shows (IoU >= 0.5), or
    None when some slot shows none or two slots show one source."""
    out = {}
    for i in np.flatnonzero(graph["role"] == Role.PRINCIPAL):
        source = source_at(clip, truth, graph["box"][i], float(graph["time"][i]), fps)
        if source is None:
            return None
        out[int(graph["slot"][i])] = source["stem_channel"]
    return out if len(set(out.values())) == len(out) else None


def main(model_path: Path, graphs_path: Path, world_dir: Path) -> None:
    torch.set_num_threads(2)
    model, meta = load_separator(model_path)
    recipe, cfg = RECIPES[meta["recipe"]], SpecConfig(**meta["spec"])
    graphs = GraphStore(graphs_path)
    world = json.loads((world_dir / "world.json").read_text())
    tally: dict[str, dict[str, list]] = {}
    for clip in world["clips"]:
        cid = clip["clip_id"]
        if clip["split"] != "test" or len(clip["sources"]) != 2 or cid not in graphs.index:
            continue
        graph = graphs.read(cid)
        truth = np.load(world_dir / "truth" / f"{cid}.npz")
        slots = slot_sources(graph, clip, truth, world["fps"])
        same = clip["sources"][0]["class"] == clip["sources"][1]["class"]
        kind = "one class" if same else "two classes"
        t = tally.setdefault(kind, {"best": [], "slots": [], "agree": [], "unmatched": []})
        if slots is None or len(slots) < 2:
            t["unmatched"].append(cid)
            continue
        refs, outs = clip_estimates(model, graphs, cid, world_dir / "stems", recipe, cfg)
        score = np.array([[si_sdr(r, o) for o in outs] for r in refs])  # (2, n_outputs)
        best = max(
            itertools.permutations(range(len(outs)), 2),
            key=lambda p: score[0, p[0]] + score[1, p[1]],
        )
        own = [next(s for s, c in slots.items() if c == k) for k in range(2)]
        t["best"].append(score[[0, 1], list(best)].mean())
        t["slots"].append(score[[0, 1], own].mean())
        t["agree"].append(list(best) == own)
    print(f"{model_path} ({meta['name']}): SI-SDR in dB, two-source test clips")
    for kind, t in sorted(tally.items()):
        n = len(t["best"])
        if not n:
            print(f"  {kind}: no clip with both slots matched ({len(t['unmatched'])} unmatched)")
            continue
        print(
            f"  {kind:11s} {n:2d} clips: best assignment {np.mean(t['best']):6.2f}, "
            f"the slots' own {np.mean(t['slots']):6.2f}, agree in {np.mean(t['agree']):.0%}"
            f" ({len(t['unmatched'])} clips without both slots matched)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, nargs="?", default=Path("data/train/model.pt"))
    parser.add_argument("--graphs", type=Path, default=Path("data/graphs/graphs.h5"))
    parser.add_argument("--world", type=Path, default=Path("data/source"))
    args = parser.parse_args()
    main(args.model, args.graphs, args.world)
