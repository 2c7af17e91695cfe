"""The Separator base: recorded construction, the params section per separator, the hooks."""

import dataclasses
import inspect

import pytest
import torch
import yaml

from pipeline.errors import PipelineError
from pipeline.params import ParamsError, parse
from pipeline.separation.base import LOSSES, Separator, unwrap
from pipeline.separation.model import (
    SEPARATORS,
    AVSGSOptions,
    ModelParams,
    load_separator,
    model_config,
    save_separator,
)
from tests.conftest import REPO


def test_construction_records_every_argument_defaults_included():
    config = model_config(ModelParams.of("avsgs", "tiny"), "reference", 6, 5, 2)
    assert "levels" not in config and "subgraphs" in config
    model = SEPARATORS["avsgs"](**config)
    assert model.config["levels"] == 7  # a default, recorded all the same
    assert {k: model.config[k] for k in config} == config
    assert set(model.config) == set(inspect.signature(SEPARATORS["avsgs"]).parameters)


def test_a_checkpoint_with_an_argument_the_code_no_longer_takes_is_refused(tmp_path):
    config = model_config(ModelParams.of("coseparation", "tiny"), "reference", 6, 5, 2)
    model = SEPARATORS["coseparation"](**config)
    save_separator(tmp_path / "m.pt", model, {})
    rebuilt, meta = load_separator(tmp_path / "m.pt")
    assert rebuilt.config == model.config and meta["name"] == "coseparation"
    payload = torch.load(tmp_path / "m.pt", weights_only=False)
    payload["config"]["residual"] = True  # an option of an older code
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(PipelineError, match=r"old\.pt: .*built with \['residual'\].*retrain"):
        load_separator(tmp_path / "old.pt")


@pytest.mark.parametrize("name", sorted(SEPARATORS))
def test_every_separator_has_a_section_that_it_takes_whole(name):
    cls = SEPARATORS[name]
    assert issubclass(cls, Separator) and set(cls.losses) <= set(LOSSES)
    assert type(getattr(ModelParams.of(name), name)) is cls.Options
    config = model_config(ModelParams.of(name, "tiny"), "reference", 48, 5, 2, crop_size=4)
    for option in dataclasses.fields(cls.Options):
        assert option.name in config, f"{name} ignores its own option {option.name}"
    model = cls(**config)
    assert unwrap(model) is model and model.permutation_invariant == (name == "audio_only")


def test_the_default_params_file_has_a_section_per_separator_and_a_foreign_flag_is_an_error():
    section = yaml.safe_load((REPO / "params.yaml").read_text())["model"]
    params = parse(ModelParams, section, "model")
    assert params.options() == AVSGSOptions() and set(SEPARATORS) <= set(section)
    bad = {**section, "coseparation": {"skip": True, "gat": False}}
    with pytest.raises(ParamsError, match=r"unknown key model\.coseparation\.gat"):
        parse(ModelParams, bad, "model")
    flat = {k: v for k, v in section.items() if k not in SEPARATORS} | {"gat": False}
    with pytest.raises(ParamsError, match=r"unknown key model\.gat"):
        parse(ModelParams, flat, "model")
    with pytest.raises(PipelineError, match="not a separator"):
        ModelParams.of("nope")


def test_a_subclass_naming_an_unknown_loss_is_refused():
    with pytest.raises(TypeError, match="unknown losses"):

        class Bad(Separator):  # noqa: F841
            losses = ("consistency", "beauty")
