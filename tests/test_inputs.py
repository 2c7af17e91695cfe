"""Files a user brings must sit in inputs/, which dvc.yaml declares, so that editing them re-runs
the pipeline."""

import pytest
import yaml

from pipeline.errors import PipelineError
from pipeline.inputs import check_tracked
from tests.conftest import REPO


def test_local_files_outside_inputs_are_refused_with_what_to_do(tmp_path):
    inputs = tmp_path / "inputs" / "source"
    inputs.mkdir(parents=True)
    (inputs / "mine.csv").write_text("x")
    check_tracked(str(inputs / "mine.csv"), "source.csv.path", inputs)
    check_tracked((inputs / "mine.csv").as_uri(), "source.csv.path", inputs)
    check_tracked("https://lab.example/list.csv", "source.csv.path", inputs)  # hashed instead
    check_tracked(None, "source.csv.path", inputs)
    for outside in (str(tmp_path / "mine.csv"), str(inputs / ".." / ".." / "mine.csv")):
        with pytest.raises(PipelineError, match="lies outside .*copy it there"):
            check_tracked(outside, "source.csv.path", inputs)


def test_the_stages_that_read_user_files_depend_on_their_inputs_folder():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage, folder in (("source", "inputs/source"), ("detector", "inputs/detector")):
        assert folder in stages[stage]["deps"] and f"--inputs {folder}" in stages[stage]["cmd"]
        assert (REPO / folder).is_dir()
