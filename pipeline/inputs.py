"""Files a user brings from outside the pipeline (a clip list, a detector checkpoint) live in the
repository's ``inputs/`` folder, which ``dvc.yaml`` declares as a dependency of the stages that
read them; so editing such a file re-runs those stages and what follows, as for any other input.

A params value naming a local file outside that folder is refused with what to do; a remote
(http, https) address cannot be watched by DVC: its bytes are hashed into the stage's output
instead, and ``dvc repro -f <stage>`` fetches it again.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from pipeline.errors import PipelineError


def check_tracked(value: str | None, key: str, inputs_dir: str | Path) -> None:
    """Raise :class:`PipelineError` when ``value`` (the params ``key``) is a local file outside
    ``inputs_dir``; URLs and null pass."""
    if value is None:
        return
    parts = urllib.parse.urlsplit(value)
    if parts.scheme in ("http", "https"):
        return
    path = Path(urllib.parse.unquote(parts.path) if parts.scheme == "file" else value)
    inputs = Path(inputs_dir).resolve()
    if not path.resolve().is_relative_to(inputs):
        raise PipelineError(
            f"{key} {value!r} lies outside {inputs_dir}/, which DVC watches: copy it there "
            f"(e.g. {Path(inputs_dir) / path.name}) and set {key} to that path, so that editing "
            "it re-runs the pipeline"
        )
