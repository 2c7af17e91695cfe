"""The comparison table of ``docs/results.md``, written from ``dvc exp show --json``.

Every committed run and every finished experiment derived from it that has ``metrics/evaluate.json``
becomes one row: the separator (``model.name``), the visual front end (``detect.backend`` where
the params have it), the preset, steps and weight decay, the test SDR / SIR / SAR / SDRi, the
SDR of separating the sources inside one clip (the synthetic world's ``sdr_within_clip``), the
training minutes and the parameter count. The rows replace whatever stands between the markers
``<!-- results:begin -->`` and ``<!-- results:end -->`` in the document, so the prose around the
table stays hand-written and the numbers never are.

Usage (``docs/results.md`` lists the experiments to run first)::

    uv run python -m pipeline.results                  # runs `dvc exp show --json`
    uv run python -m pipeline.results --json show.json # or reads its saved output
    uv run python -m pipeline.results --commits 5      # and the experiments of 4 older commits
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
COLUMNS = [
    ("run", "run"),
    ("model", "model.name"),
    ("front end", "detect.backend"),
    ("preset", "model.preset"),
    ("steps", "train.steps"),
    ("weight decay", "train.weight_decay"),
    ("SDR", "sdr"),
    ("SIR", "sir"),
    ("SAR", "sar"),
    ("SDRi", "sdri"),
    ("within clip", "sdr_within_clip"),
    ("train min", "minutes"),
    ("parameters", "parameters"),
]
# What a row takes from each source: params.yaml, metrics/evaluate.json, metrics/train.json.
PARAMS = ("model.name", "detect.backend", "model.preset", "train.steps", "train.weight_decay")
SCORES = (
    "sdr",
    "sir",
    "sar",
    "sdri",
    "sdr_mixture",
    "sdr_within_clip",
    "oracle_irm_sdr",
    "n_pairs",
)
TRAINING = ("minutes", "parameters")


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
    return {
        "run": label,
        "rev": data.get("rev", state.get("rev")),
        **{k: params.get(k) for k in PARAMS},
        **{k: evaluate.get(k) for k in SCORES},
        **{k: train.get(k) for k in TRAINING},
    }


def rows(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row for the newest commit and one per successful experiment in ``dvc exp show --json``
    output. The workspace is left out: it is either the commit or an unfinished run. An experiment
    whose baseline is an older commit (``--commits``) is labelled with that commit, because its
    code is that commit's."""
    out = []
    commits = [s for s in states if s.get("rev") != "workspace"]
    for i, state in enumerate(commits):
        if i == 0:
            row = _row(state, state.get("name") or str(state.get("rev", ""))[:7])
            if row:
                out.append(row)
        for exp in state.get("experiments") or []:
            executor = exp.get("executor") or {}
            if executor.get("state") not in (None, "success") or not exp.get("revs"):
                continue  # queued, running or failed
            tip = exp["revs"][0]
            label = exp.get("name") or tip.get("name") or str(tip.get("rev"))[:7]
            if i > 0:
                label = f"{label} (at {str(state.get('rev', ''))[:7]})"
            row = _row(tip, label)
            if row:
                out.append(row)
    return out


def _cell(value: Any, key: str = "") -> str:
    if value is None:
        return "–"
    if key == "train.weight_decay":
        return f"{value:g}"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int) and value >= 10_000:
        return f"{value / 1e6:.2f} M"
    return str(value)


def table(rows_: list[dict[str, Any]]) -> str:
    """A Markdown table, best SDRi first."""
    ordered = sorted(rows_, key=lambda r: -(r["sdri"] if r["sdri"] is not None else -1e9))
    lines = [
        "| " + " | ".join(h for h, _ in COLUMNS) + " |",
        "|" + "|".join("---" if k in ("run", "model.name") else "---:" for _, k in COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(_cell(r.get(k), k) for _, k in COLUMNS) + " |" for r in ordered]
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
    parser.add_argument(
        "--commits",
        type=int,
        default=1,
        help="also list the experiments run from this many commits back (first parents); "
        "only the newest commit gets a row of its own",
    )
    args = parser.parse_args(argv)
    if args.commits < 1:
        parser.error("--commits must be at least 1")
    states = _read_json(args.json) if args.json else exp_show(args.commits)
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
