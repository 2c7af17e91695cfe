"""AVSGS's building blocks, one per file: the scene-graph encoder, the recurrent conditioner, the
conditioned U-Net, the audio classifier, and ASMP's direction head."""

from pipeline.separation.nn.classifier import AudioClassifier
from pipeline.separation.nn.conditioner import RecurrentConditioner
from pipeline.separation.nn.direction import DirectionHead
from pipeline.separation.nn.graph_encoder import SceneGraphEncoder
from pipeline.separation.nn.unet import ConditionedUNet

__all__ = [
    "AudioClassifier",
    "ConditionedUNet",
    "DirectionHead",
    "RecurrentConditioner",
    "SceneGraphEncoder",
]
