"""The comparison table of ``docs/results.md``, written from ``dvc exp show --json``.

Every committed run and every finished experiment derived from it that has
``metrics/evaluate.json`` becomes one row (a run listed twice, e.g. an experiment applied and
committed, once): the synthetic world's flavour, the separator (``model.name``), the visual front
end (``detect.backend`` where the params have it), the graph builder (``graphs.builder``;
``avsgs`` for runs made before it existed), the preset, steps, batch size and weight
decay, the test SDR / SIR / SAR / SDRi, the SDR of separating the sources inside one clip (the
synthetic world's ``sdr_within_clip``) and inside the clips whose two sources share a class
(``one class``: the scenes world, where only their partners tell them apart), ASMP's direction-loss
weight (``motion loss``), the direction-of-motion accuracy in both schemes beside the majority
vote (``metrics/evaluate.json``'s ``direction``: ASMP's own head or a probe on the separated
outputs), the training minutes and the parameter count. The rows replace whatever stands
between the markers ``<!-- results:begin -->`` and ``<!-- results:end -->`` in the document, so
the prose around the table stays hand-written and the numbers never are.

Usage (``docs/results.md`` lists the experiments to run first)::

    uv run python -m pipeline.results                  # runs `dvc exp show --json`
    uv run python -m pipeline.results --json show.json # or reads its saved output
    uv run python -m pipeline.results --commits 5      # and the experiments of 4 older commits
    uv run python -m pipeline.results --since ffc83e0  # and those of every commit since ffc83e0
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline import io
from pipeline.errors import PipelineError

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _millions(value: int) -> str:
    return f"{value / 1e6:.2f} M"


def _percent(value: float) -> str:
    return f"{value:.1%}"


# (header, key, format); a column without a format shows floats to 2 decimals, the rest as is.
COLUMNS = [
    ("run", "run", None),
    ("world", "source.synthetic.flavour", None),
    ("model", "model.name", None),
    ("front end", "detect.backend", None),
    ("graph", "graphs.builder", None),
    ("preset", "model.preset", None),
    ("steps", "train.steps", None),
    ("batch", "train.batch_size", None),
    ("weight decay", "train.weight_decay", "{:g}".format),
    ("SDR", "sdr", None),
    ("SIR", "sir", None),
    ("SAR", "sar", None),
    ("SDRi", "sdri", None),
    ("within clip", "sdr_within_clip", None),
    ("one class", "sdr_within_clip_one_class", None),
    ("motion loss", "motion_weight", "{:g}".format),
    ("dir. 10", "direction.10.accuracy", _percent),
    ("maj. 10", "direction.10.majority", _percent),
    ("dir. 28", "direction.28.accuracy", _percent),
    ("maj. 28", "direction.28.majority", _percent),
    ("train min", "minutes", None),
    ("parameters", "parameters", _millions),
]
# What a row takes from each source: params.yaml, metrics/evaluate.json, metrics/train.json.
PARAMS = (
    "source.synthetic.flavour",
    "model.name",
    "detect.backend",
    "graphs.builder",
    "model.preset",
    "train.steps",
    "train.batch_size",
    "train.weight_decay",
    "model.asmp.direction_weight",
)
SCORES = (
    "sdr",
    "sir",
    "sar",
    "sdri",
    "sdr_mixture",
    "sdr_within_clip",
    "sdr_within_clip_one_class",
    "oracle_irm_sdr",
    "n_pairs",
    "direction.10.accuracy",
    "direction.10.majority",
    "direction.28.accuracy",
    "direction.28.majority",
)
TRAINING = ("minutes", "parameters")
# params a run made before they existed did not have: what it used (the only graph there was)
BEFORE = {"graphs.builder": "avsgs"}


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _row(state: dict[str, Any], label: str) -> dict[str, Any] | None:
    data = state.get("data") or {}
    metrics = {f: (r or {}).get("data") or {} for f, r in (data.get("metrics") or {}).items()}
    evaluate = metrics.get("metrics/evaluate.json")
    if not evaluate:
        return None
    params = _flat(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})
    train = metrics.get("metrics/train.json", {})
    scores = _flat(evaluate)
    row = {
        "run": label,
        "rev": data.get("rev", state.get("rev")),
        **{k: params.get(k, BEFORE.get(k)) for k in PARAMS},
        **{k: scores.get(k) for k in SCORES},
        **{k: train.get(k) for k in TRAINING},
    }
    # the direction loss's weight, where the separator has one (asmp)
    row["motion_weight"] = (
        row["model.asmp.direction_weight"] if row["model.name"] == "asmp" else None
    )
    return row


def _same_run(row: dict[str, Any]) -> tuple:
    """What makes two rows one run: its params and its scores."""
    return tuple(row.get(k) for k in (*PARAMS, *SCORES))


def rows(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per distinct run in ``dvc exp show --json`` output: the newest commit's, each
    successful experiment's, and an older commit's own run where no listed row has its params and
    scores (the committed run before the defaults changed). The workspace is left out: it is
    either the commit or an unfinished run. A row from an older commit (``--commits``) is labelled
    with that commit, because its code is that commit's; an older commit's own run with the
    oldest commit that has it (where it was made), an experiment that repeats a listed run not at
    all (e.g. the one applied and committed as the new default)."""
    out: list[dict[str, Any]] = []
    seen: dict[tuple, dict[str, Any]] = {}
    committed: set[tuple] = set()  # the runs listed as an older commit's own

    def add(row: dict[str, Any] | None, committed_at: str | None = None) -> None:
        if row is None:
            return
        key = _same_run(row)
        if key in seen:
            if committed_at and key in committed:  # the same run, made further back
                seen[key]["run"] = f"committed (at {committed_at})"
            return
        if committed_at:
            committed.add(key)
        seen[key] = row
        out.append(row)

    commits = [s for s in states if s.get("rev") != "workspace"]
    for i, state in enumerate(commits):
        rev = str(state.get("rev", ""))[:7]
        if i == 0:
            add(_row(state, state.get("name") or rev))
        for exp in state.get("experiments") or []:
            executor = exp.get("executor") or {}
            if executor.get("state") not in (None, "success") or not exp.get("revs"):
                continue  # queued, running or failed
            tip = exp["revs"][0]
            label = exp.get("name") or tip.get("name") or str(tip.get("rev"))[:7]
            add(_row(tip, f"{label} (at {rev})" if i > 0 else label))
        if i > 0:
            add(_row(state, f"committed (at {rev})"), committed_at=rev)
    return out


def _cell(value: Any, fmt=None) -> str:
    if value is None:
        return "–"
    if fmt is not None:
        return fmt(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def table(rows_: list[dict[str, Any]]) -> str:
    """A Markdown table, best SDRi first."""
    ordered = sorted(rows_, key=lambda r: -(r["sdri"] if r["sdri"] is not None else -1e9))
    lines = [
        "| " + " | ".join(h for h, _, _ in COLUMNS) + " |",
        "|"
        + "|".join("---" if k in ("run", "model.name") else "---:" for _, k, _ in COLUMNS)
        + "|",
    ]
    lines += [
        "| " + " | ".join(_cell(r.get(k), fmt) for _, k, fmt in COLUMNS) + " |" for r in ordered
    ]
    return "\n".join(lines)


def update_doc(doc: str | Path, text: str) -> None:
    """Replace the table between the markers of ``doc`` (atomically)."""
    doc = Path(doc)
    body = doc.read_text()
    if BEGIN not in body or END not in body:
        raise PipelineError(f"{doc}: no {BEGIN} ... {END} markers to put the table between")
    head, rest = body.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with io.atomic_path(doc) as tmp:
        Path(tmp).write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def exp_show(commits: int = 1) -> list[dict[str, Any]]:
    """``dvc exp show --json`` for the experiments of the last ``commits`` commits."""
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", "-n", str(commits)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise PipelineError(f"`dvc exp show --json` failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def commit_range(commits: int = 1, since: str | None = None) -> set[str]:
    """The full hashes of the commits whose runs are listed: the last ``commits`` first parents
    of HEAD, or with ``since`` every commit from it to HEAD (both included). ``dvc exp show -n``
    may list more commits than asked for, so the caller keeps only these."""
    if since:
        args, what = ["HEAD", "--not", f"{since}^@"], f"{since}: not a commit"
    else:
        args, what = ["--first-parent", "-n", str(commits), "HEAD"], "no commits"
    done = subprocess.run(["git", "rev-list", *args], capture_output=True, text=True)
    if done.returncode:
        raise PipelineError(f"{what} of this repository ({done.stderr.strip()})")
    return set(done.stdout.split())


def _read_json(path: str) -> list[dict[str, Any]]:
    try:
        return json.loads(Path(path).read_text())
    except OSError as err:
        raise PipelineError(f"{path}: cannot read it ({err.strerror})") from err
    except json.JSONDecodeError as err:
        raise PipelineError(
            f"{path}: not JSON ({err}); save it with `dvc exp show --json > {path}`"
        ) from err


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="saved `dvc exp show --json` output (default: run it)")
    parser.add_argument("--doc", default="docs/results.md", help="the document to update")
    span = parser.add_mutually_exclusive_group()
    span.add_argument(
        "--commits",
        type=int,
        default=1,
        help="also list the runs of this many commits back (first parents): their experiments, "
        "and their own run where it differs from every listed one",
    )
    span.add_argument(
        "--since", help="also list the runs of every commit from this one to HEAD (both included)"
    )
    args = parser.parse_args(argv)
    if args.commits < 1:
        parser.error("--commits must be at least 1")
    keep = commit_range(args.commits, args.since) if args.since or not args.json else None
    states = _read_json(args.json) if args.json else exp_show(len(keep))
    if keep is not None:  # a saved output is taken as it is, unless --since says otherwise
        states = [s for s in states if s.get("rev") == "workspace" or s.get("rev") in keep]
    found = rows(states)
    if not found:
        raise PipelineError("no run with metrics/evaluate.json in `dvc exp show`; run the stages")
    update_doc(args.doc, table(found))
    print(f"{args.doc}: {len(found)} runs")


if __name__ == "__main__":
    try:
        main()
    except PipelineError as err:
        sys.exit(f"results: {err}")
