"""What every ``stages/<name>.py`` shares: logging, params loading and error reporting."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from pipeline import params as params_mod
from pipeline.errors import PipelineError

log = logging.getLogger("pipeline")


def setup_logging(level: int = logging.INFO) -> None:
    logging.getLogger("spacy").setLevel(logging.WARNING)  # spaCy logs its own setup chatter
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )


def run(
    name: str,
    sections: dict[str, type],
    add_args: Callable[[argparse.ArgumentParser], None],
    body: Callable[[dict[str, Any], argparse.Namespace], None],
    argv: list[str] | None = None,
) -> int:
    """Parse a stage's arguments and params sections, run ``body``, and turn a
    :class:`~pipeline.errors.PipelineError` into a one-line message and exit status 1."""
    parser = argparse.ArgumentParser(prog=f"stages/{name}.py", description=f"The {name} stage.")
    parser.add_argument("--params", default="params.yaml", help="the params file")
    add_args(parser)
    args = parser.parse_args(argv)
    setup_logging()
    from pipeline.runtime import APPLIED

    if APPLIED:
        log.info("process settings: %s", "; ".join(f"{k} {v}" for k, v in APPLIED.items()))
    try:
        loaded = params_mod.load(sections, args.params)
        body(loaded, args)
    except PipelineError as err:
        log.error("%s stage failed: %s", name, err)
        return 1
    return 0


def main(*a: Any, **kw: Any) -> None:
    """:func:`run`, exiting with its status."""
    sys.exit(run(*a, **kw))
