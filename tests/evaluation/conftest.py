"""A tiny separator trained for two steps on tone clips with a test split (one clip silent)."""

import pytest

from pipeline.separation.model import ModelParams
from pipeline.separation.train import TrainParams, train
from tests.separation.conftest import make_stores

RATE = 11025

TRAIN = TrainParams(
    recipe="reference",
    steps=2,
    batch_size=2,
    lr_visual=1e-3,
    lr_separator=1e-3,
    lr_classifier=1e-3,
    weight_decay=0.0,
    lr_step=10,
    lr_gamma=0.1,
    consistency=True,
    coseparation=True,
    orthogonality=True,
    log_every=1,
    val_every=2,
    val_mixtures=1,
    checkpoint_every=2,
    workers=0,
    threads=1,
)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    graphs, audio = make_stores(root, n_train=6, n_val=2, n_test=6, seconds=7.0, silent=("clip13",))
    params = TRAIN
    model = ModelParams.of("avsgs", "tiny")
    train(
        graphs,
        audio,
        params,
        model,
        seed=0,
        sample_rate=RATE,
        state_path=root / "state.pt",
        model_out=root / "model.pt",
        live_dir=root / "live",
    )
    return root
