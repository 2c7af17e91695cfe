"""benchmarks/oversmoothing.py on a small AVSGS and a hand-made graph store."""

import importlib.util

import numpy as np
import pytest
import torch

from pipeline.errors import PipelineError
from pipeline.graphs.store import write_store
from pipeline.separation.model import AVSGS, CoSeparation, save_separator
from tests.conftest import REPO

from .test_feature_probe import N_CLASSES, _graph

spec = importlib.util.spec_from_file_location(
    "oversmoothing", REPO / "benchmarks" / "oversmoothing.py"
)
oversmoothing = importlib.util.module_from_spec(spec)
spec.loader.exec_module(oversmoothing)

TINY = dict(hidden=8, channels=8, heads=2, ngf=4, classifier="small", classifier_width=4)


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    graphs = [_graph(rng, f"te{i}", "test", [i % N_CLASSES], context=[(i + 1) % N_CLASSES])
              for i in range(4)]  # fmt: skip
    graphs.append(_graph(rng, "tr0", "train", [0]))
    path = tmp_path / "graphs.h5"
    write_store(
        path,
        graphs,
        [],
        {"label_names": ["a", "b", "c"], "features": {"kind": "box_head", "dim": N_CLASSES}},
        N_CLASSES,
        2,
    )
    return path


def _checkpoint(path, model):
    save_separator(path, model, {})
    return path


def test_it_reports_every_layer_and_matches_the_encoder(tmp_path, store):
    torch.manual_seed(0)
    model = AVSGS(N_CLASSES, N_CLASSES + 1, 2, **TINY)
    figures = oversmoothing.measure(str(_checkpoint(tmp_path / "m.pt", model)), str(store), "test")
    assert list(figures) == ["input", "mlp", "gat", "edgeconv"]
    for cos, spread in figures.values():
        assert -1 <= cos <= 1 and spread >= 0
    # one graph's nodes, as the encoder computes them: the same figures
    batch = oversmoothing.GraphStore(store).batch(["te0", "te1", "te2", "te3"])
    with torch.no_grad():
        _, (h, g) = model.eval().encoder.encode(batch.x, batch.edge_index, batch.batch)
    assert figures["gat"] == pytest.approx(oversmoothing.alike(h, batch.batch))
    assert figures["edgeconv"] == pytest.approx(oversmoothing.alike(g, batch.batch))


def test_equal_nodes_score_cosine_one_and_no_spread():
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [3.0, 0.0], [0.0, 3.0]])
    batch = torch.tensor([0, 0, 1, 1])
    cos, spread = oversmoothing.alike(x[:2], batch[:2])
    assert cos == pytest.approx(1.0) and spread == pytest.approx(0.0)
    cos, spread = oversmoothing.alike(x[2:], batch[2:] - 1)  # orthogonal nodes
    assert cos == pytest.approx(0.0) and spread > 0


def test_bad_inputs_are_named(tmp_path, store):
    torch.manual_seed(0)
    avsgs = _checkpoint(tmp_path / "a.pt", AVSGS(N_CLASSES, N_CLASSES + 1, 2, **TINY))
    with pytest.raises(PipelineError, match="no val graphs"):
        oversmoothing.measure(str(avsgs), str(store), "val")
    with pytest.raises(PipelineError, match="no separator checkpoint"):
        oversmoothing.measure(str(tmp_path / "missing.pt"), str(store), "test")
    cosep = CoSeparation(N_CLASSES, N_CLASSES + 1, 2, hidden=8, channels=8, ngf=4,
                         classifier="small", classifier_width=4)  # fmt: skip
    with pytest.raises(PipelineError, match="coseparation model has no graph encoder"):
        oversmoothing.measure(str(_checkpoint(tmp_path / "c.pt", cosep)), str(store), "test")
    with pytest.raises(PipelineError, match="no graph with two or more nodes"):
        oversmoothing.alike(torch.ones(2, 3), torch.tensor([0, 1]))
