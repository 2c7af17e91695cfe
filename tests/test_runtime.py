"""The stages' process settings (pipeline/runtime.py): tcmalloc preloaded by a re-execution, or
glibc told to keep freed memory; OpenMP's spin count; nothing with PIPELINE_TUNE=0."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from pipeline import runtime
from tests.conftest import REPO

PROBE = """
import json, os, sys
from pipeline import runtime
if sys.argv[1] == "no-tcmalloc":
    runtime.tcmalloc_path = lambda: None
applied = runtime.tune_process(reexec=True)
# (no torch here: the environment and the preload are in place before anything loads it)
maps = open("/proc/self/maps").read()
print(json.dumps({
    "applied": applied,
    "tcmalloc_mapped": "tcmalloc" in maps,
    "spin": os.environ.get("GOMP_SPINCOUNT"),
    "argv": sys.argv[1:],
}))
"""


def probe(mode: str, **env) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "LD_PRELOAD")}
    res = subprocess.run(
        [sys.executable, "-c", PROBE, mode, "second argument"],
        capture_output=True,
        text=True,
        env={**base, "PYTHONPATH": str(REPO), **env},
        check=True,
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc are Linux's")
def test_a_stage_process_gets_tcmalloc_or_a_glibc_that_keeps_its_memory():
    out = probe("as installed")
    assert out["argv"] == ["as installed", "second argument"]  # re-executed with its arguments
    assert out["spin"] == runtime.SPIN_COUNT
    if runtime.tcmalloc_path():  # installed by the README's commands
        assert out["tcmalloc_mapped"] and out["applied"]["allocator"] == "tcmalloc (preloaded)"
    else:
        assert not out["tcmalloc_mapped"] and out["applied"]["allocator"].startswith("glibc")
    fallback = probe("no-tcmalloc")
    assert not fallback["tcmalloc_mapped"]
    assert fallback["applied"]["allocator"].startswith("glibc keeping freed memory")
    assert "install libtcmalloc-minimal4" in fallback["applied"]["allocator"]
    untouched = probe("as installed", PIPELINE_TUNE="0")
    assert untouched["applied"] == {} and untouched["spin"] is None
    assert not untouched["tcmalloc_mapped"]
    passive = probe("as installed", OMP_WAIT_POLICY="PASSIVE")  # a wait policy of one's own
    assert passive["spin"] is None and "GOMP_SPINCOUNT" not in passive["applied"]


def test_a_stage_logs_its_process_settings(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "LD_PRELOAD")}
    res = subprocess.run(
        [sys.executable, "stages/labels.py", "--params", str(tmp_path / "missing.yaml")]
        + ["--clips", "x", "--manifest", "y", "--metrics", "z"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert res.returncode == 1 and "missing.yaml" in res.stderr
    settings = next(line for line in res.stderr.splitlines() if "process settings" in line)
    expected = "tcmalloc (preloaded)" if runtime.tcmalloc_path() else "glibc keeping"
    assert expected in settings and "GOMP_SPINCOUNT 1000" in settings


def test_a_stage_runs_the_code_of_its_own_checkout(tmp_path):
    """`dvc exp run --temp` and `dvc queue` run the stages of a copy of the repository, while the
    environment has the workspace installed (editable): the copy's own code must run."""
    copy = tmp_path / "copy"
    shutil.copytree(REPO / "stages", copy / "stages")
    shutil.copytree(REPO / "pipeline", copy / "pipeline")
    with (copy / "pipeline" / "stage.py").open("a") as fh:
        fh.write("\nprint('the copy', flush=True)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "stages/labels.py", "--params", str(tmp_path / "missing.yaml")],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "the copy" in done.stdout, done.stderr[-500:]
