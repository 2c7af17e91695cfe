"""Typed params: strict parsing, and every params.yaml key read by the stages that list it."""

import dataclasses
from typing import Literal

import pytest
import yaml

from pipeline.params import ParamsError, key_paths, load, parse
from tests.conftest import REPO, load_stage


@dataclasses.dataclass(frozen=True)
class Inner:
    rate: float
    names: list[str]


@dataclasses.dataclass(frozen=True)
class Outer:
    mode: Literal["a", "b"]
    steps: int
    path: str | None
    flag: bool
    inner: Inner


GOOD = {"mode": "a", "steps": 3, "path": None, "flag": True, "inner": {"rate": 1, "names": ["x"]}}


def test_parse_good_section():
    out = parse(Outer, GOOD, "sec")
    assert out == Outer("a", 3, None, True, Inner(1.0, ("x",)))
    assert isinstance(out.inner.rate, float)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stpes": 3}, r"params\.yaml: unknown key sec\.stpes \(known keys of sec: flag, inner"),
        ({"inner": {"rate": 1, "names": [], "extra": 0}}, "unknown key sec.inner.extra"),
        ({"steps": "3"}, r"sec\.steps: expected int, got '3'"),
        ({"steps": True}, r"sec\.steps: expected int, got True"),
        ({"steps": 2.5}, r"sec\.steps: expected int, got 2\.5"),
        ({"mode": "c"}, r"sec\.mode: expected one of 'a' \| 'b', got 'c'"),
        ({"path": 3}, r"sec\.path: expected str or null, got 3"),
        ({"inner": {"rate": 1, "names": "x"}}, r"sec\.inner\.names: expected list of str"),
        ({"inner": {"rate": 1, "names": [1]}}, r"sec\.inner\.names\[0\]: expected str, got 1"),
        ({"inner": 5}, r"sec\.inner: expected a mapping, got 5"),
    ],
)
def test_bad_keys_are_named(change, message):
    with pytest.raises(ParamsError, match=message):
        parse(Outer, {**GOOD, **change}, "sec")


def test_missing_key_and_section_are_named(tmp_path):
    bad = {k: v for k, v in GOOD.items() if k != "flag"}
    with pytest.raises(ParamsError, match="missing key sec.flag"):
        parse(Outer, bad, "sec")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"other": {}}))
    with pytest.raises(ParamsError, match=r"p\.yaml: missing section sec"):
        load({"sec": Outer}, path)
    path.write_text(yaml.safe_dump({"base": {"seed": 1, "rate": "x"}}))
    assert load({"base.seed": int}, path) == {"base.seed": 1}
    with pytest.raises(ParamsError, match=r"base\.rate: expected int, got 'x'"):
        load({"base.rate": int}, path)
    with pytest.raises(ParamsError, match="missing key base.other"):
        load({"base.other": int}, path)
    with pytest.raises(ParamsError, match="params file not found"):
        load({"sec": Outer}, tmp_path / "nope.yaml")


def _stage_modules():
    for path in sorted((REPO / "stages").glob("[a-z]*.py")):  # not the _checkout helper
        yield path.stem, load_stage(path.stem)


def _leaves(data, stop, prefix=""):
    """Leaf key paths of params.yaml; a mapping that a stage reads whole is one leaf."""
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in stop:
            yield from _leaves(value, stop, path + ".")
        else:
            yield path


def test_every_params_key_is_read_and_every_read_key_exists():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    read = set()
    for _, module in _stage_modules():
        for section, cls in module.PARAMS.items():
            read |= key_paths(cls, section)
        load(module.PARAMS, REPO / "params.yaml")  # every stage parses the default params
    in_file = set(_leaves(params, read))
    assert in_file - read == set(), "keys in params.yaml that no stage reads"
    assert read - in_file == set(), "keys a stage reads that params.yaml lacks"


def test_dvc_yaml_declares_what_each_stage_reads():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, module in _stage_modules():
        declared = stages[name].get("params", [])
        read = set()
        for section, cls in module.PARAMS.items():
            read |= key_paths(cls, section)
        covered = {k for k in read if any(k == d or k.startswith(d + ".") for d in declared)}
        assert covered == read, f"dvc.yaml stage {name} does not declare {sorted(read - covered)}"
        for d in declared:
            assert any(k == d or k.startswith(d + ".") for k in read), f"{name} never reads {d}"


def test_mapping_params():
    @dataclasses.dataclass(frozen=True)
    class Maps:
        m: dict[str, list[str]]

    assert parse(Maps, {"m": {"dogs": ["dog"], "man": []}}, "cm") == Maps(
        {"dogs": ("dog",), "man": ()}
    )
    with pytest.raises(ParamsError, match=r"cm\.m\.dogs: expected list of str, got 'dog'"):
        parse(Maps, {"m": {"dogs": "dog"}}, "cm")
    with pytest.raises(ParamsError, match=r"cm\.m: expected mapping of str to list of str"):
        parse(Maps, {"m": ["dog"]}, "cm")
