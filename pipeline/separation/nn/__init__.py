"""AVSGS's building blocks, one per file: the scene-graph encoder, the recurrent conditioner, the
conditioned U-Net and the audio classifier."""

from pipeline.separation.nn.classifier import AudioClassifier
from pipeline.separation.nn.conditioner import RecurrentConditioner
from pipeline.separation.nn.graph_encoder import SceneGraphEncoder
from pipeline.separation.nn.unet import ConditionedUNet

__all__ = ["AudioClassifier", "ConditionedUNet", "RecurrentConditioner", "SceneGraphEncoder"]
