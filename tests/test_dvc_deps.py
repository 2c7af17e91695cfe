"""Every stage's ``dvc.yaml`` deps cover the package code it runs, so an edit to any module a
stage imports (directly or through other modules, at the top or inside a function) re-runs it."""

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _module_file(name: str) -> Path | None:
    base = REPO / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> set[Path]:
    """The ``pipeline`` modules a file imports (and the packages they are in)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if (REPO / "stages" / f"{name}.py").is_file():  # a stage's own helper (_checkout)
                found.add(REPO / "stages" / f"{name}.py")
                continue
            if name.split(".")[0] != "pipeline":
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the packages on the way are run too
                file = _module_file(".".join(parts[:i]))
                if file is not None:
                    found.add(file)
    return found


def _inert(path: Path) -> bool:
    """A module with nothing but a docstring cannot change what a stage does."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) for s in body)


def imported_code(script: Path) -> set[Path]:
    seen, todo = set(), [script]
    while todo:
        for module in _imports(todo.pop()) - seen:
            seen.add(module)
            todo.append(module)
    return {m for m in seen if not _inert(m)}


def _covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(REPO)
    return any(rel == Path(d) or Path(d) in rel.parents for d in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stages_deps_cover_every_module_it_imports(name):
    stage = STAGES[name]
    script = REPO / stage["cmd"].split()[1]
    assert script.parent.name == "stages" and _covered(script, stage["deps"])
    missing = sorted(
        str(m.relative_to(REPO)) for m in imported_code(script) if not _covered(m, stage["deps"])
    )
    assert not missing, f"dvc.yaml stage {name} runs code it does not declare: {missing}"


def test_the_check_sees_imports_inside_functions_and_through_packages(tmp_path):
    found = {p.relative_to(REPO).as_posix() for p in imported_code(REPO / "stages" / "graphs.py")}
    assert "pipeline/graphs/run.py" in found  # a top-level import of the stage
    assert "pipeline/detection/infer.py" in found  # imported inside CropEmbedder.__call__
    assert not _covered(REPO / "pipeline/media.py", ["pipeline/graphs", "pipeline/io.py"])
    assert _covered(REPO / "pipeline/graphs/run.py", ["pipeline/graphs"])


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_stage_declares_no_module_it_does_not_run(name):
    """A declared module the stage never imports would re-run it for nothing."""
    stage = STAGES[name]
    code = {m.relative_to(REPO).as_posix() for m in imported_code(REPO / stage["cmd"].split()[1])}
    modules = [
        d for d in stage["deps"] if d.startswith(("pipeline/", "stages/_")) and d.endswith(".py")
    ]
    assert not [d for d in modules if d not in code], f"dvc.yaml stage {name} declares unused code"
