"""Imported first by every stage: puts this checkout's root first on ``sys.path``, so a stage runs
the ``pipeline`` package beside it, not the one the environment installed (editable, from the
workspace). ``dvc exp run --temp`` and ``dvc queue`` run a stage in a copy of the repository;
without this, that copy's stages would import the workspace's code."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
