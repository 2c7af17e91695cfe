"""Every tensor a step, a validation or a separation makes is made on the model's device.

No GPU is needed: the model and the data stay on the CPU while torch's default device is ``meta``,
so a tensor made without ``device=`` lands on ``meta``. A function mode then refuses any op that
receives tensors on two devices, and ``meta`` cannot be copied back to the CPU, so such a tensor
fails the test where on a GPU it would crash the run (a CPU index into a CUDA map).
"""

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from pipeline.evaluation.separate import separate_clip, separate_pair
from pipeline.graphs.store import GraphStore
from pipeline.separation.audio_store import AudioStore
from pipeline.separation.data import collate, load_item, validation_pairs
from pipeline.separation.model import ModelParams, build_separator, model_config
from pipeline.separation.spectrogram import SpecConfig
from pipeline.separation.step import RECIPES, compute_losses, separate
from pipeline.separation.validation import validate


class OneDevice(TorchFunctionMode):
    """Refuses an op whose tensor arguments sit on two devices (CPU scalars aside, as torch
    allows them anywhere)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        devices = {
            t.device
            for t in tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor) and not (t.device.type == "cpu" and t.dim() == 0)
        }
        if len(devices) > 1:
            raise AssertionError(
                f"{getattr(func, '__name__', func)} mixes {sorted(map(str, devices))}"
            )
        return func(*args, **kwargs)


def guarded():
    """Default device ``meta`` inside the mixed-device check."""

    class Both:
        def __enter__(self):
            self.meta = torch.device("meta")
            self.meta.__enter__()
            self.mode = OneDevice()
            self.mode.__enter__()

        def __exit__(self, *exc):
            self.mode.__exit__(*exc)
            self.meta.__exit__(*exc)

    return Both()


@pytest.fixture
def cpu_batching(monkeypatch):
    """PyG batches graphs on the CPU by design (the caller moves the batch): run its collate with
    the CPU as default device, so only our own code is under the guard."""
    from torch_geometric.data import Batch

    original = Batch.from_data_list.__func__

    def from_data_list(cls, *args, **kwargs):
        with torch.device("cpu"):
            return original(cls, *args, **kwargs)

    monkeypatch.setattr(Batch, "from_data_list", classmethod(from_data_list))


def test_the_guard_catches_a_tensor_made_without_the_device():
    x = torch.randn(4, 3)
    with guarded(), pytest.raises((AssertionError, NotImplementedError, RuntimeError)):
        torch.where((torch.arange(4) % 2 == 0)[:, None], x, -x)


@pytest.mark.parametrize(
    "name,recipe", [("avsgs", "reference"), ("avsgs", "paper"), ("coseparation", "reference")]
)
def test_step_validation_and_separation_make_tensors_on_the_models_device(
    stores, cpu_batching, name, recipe
):
    graphs_path, audio_path = stores
    graphs, audio = GraphStore(graphs_path), AudioStore(audio_path)
    cfg = SpecConfig(sample_rate=11025, samples=32767)
    params = ModelParams.of(name, "tiny")
    config = model_config(params, recipe, 8, 4, 2)
    torch.manual_seed(0)
    model = build_separator(name, config)
    pairs = validation_pairs(graphs, audio, graphs.ids("val"), 1, cfg.samples, 0)
    batch = collate([load_item(graphs, audio, p, cfg.samples) for p in pairs])
    with guarded():
        out = compute_losses(model, batch, RECIPES[recipe], cfg)
        out["loss"].backward()
        separated = separate(model, batch["wav"], batch["graphs"], RECIPES[recipe], cfg)
    assert torch.isfinite(out["loss"]) and separated["video"].shape == (1, 2, cfg.samples)
    with guarded():
        scores = validate(model, graphs, audio, pairs, RECIPES[recipe], cfg, 1, torch.device("cpu"))
    assert scores["pairs"] + scores["skipped"] == 1
    a, b = pairs[0]["clip_ids"]
    wav = np.stack([audio.read(a, 0, 40000), audio.read(b, 0, 40000)])
    with guarded():
        whole = separate_pair(model, wav, [graphs.data(a), graphs.data(b)], RECIPES[recipe], cfg)
        own = separate_clip(model, wav[0], graphs.data(a), RECIPES[recipe], cfg)
    assert whole["video"].shape == (2, 40000) and own.shape[-1] == 40000


def test_a_device_that_is_not_there_is_named(monkeypatch):
    from pipeline.device import check_device_name, resolve_device
    from pipeline.errors import PipelineError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(PipelineError, match="base.device is 'cuda:1' but torch sees no CUDA"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match="use auto, cpu, cuda or cuda:N"):
        check_device_name("gpu")


def test_a_corrupt_state_or_checkpoint_is_named_with_what_to_do(stores, tmp_path):
    from pipeline.errors import PipelineError
    from pipeline.separation.model import load_separator
    from pipeline.separation.train import train
    from tests.separation.test_train import MODEL, PARAMS

    state = tmp_path / "state.pt"
    state.write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(PipelineError) as err:
        train(*stores, PARAMS, MODEL, seed=0, sample_rate=11025, state_path=state)
    message = str(err.value)
    assert str(state) in message and "delete it to start training afresh" in message
    assert "weights_only" not in message
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x80\x04garbage")
    with pytest.raises(PipelineError, match="model.pt: not a readable separator checkpoint"):
        load_separator(bad)
