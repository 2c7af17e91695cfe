"""Depth backends: ``depth.backend`` selects what gives each sampled frame its depth map.

Every backend maps a clip's sampled frames to maps ``(T, size, size)`` over the canonical frame
(NaN where it knows nothing) and says what they are (``output``): ``depth`` (larger is farther,
up to one scale per frame) or ``disparity`` (relative inverse depth, up to a scale and a shift per
frame, as monocular networks give it). :mod:`pipeline.depth.register` turns either into one
registered relative depth per clip.

- ``oracle``: the synthetic ``scenes`` world's rendered depth (``truth/<clip_id>.npz`` in the
  source folder). With ``oracle.relative`` it is handed on as disparity under a random scale and
  shift per frame (seeded): what a monocular network gives at best, to exercise registration.
- ``midas``: a MiDaS model through ``torch.hub`` (Ranftl et al., 2020; online, or from the hub
  cache). Offline and without the cache it stops, naming the files and the folder they go in.
- ``file``: a model of your own, exported (``torch.export.save``, a ``.pt2`` file) or
  TorchScript (``torch.jit.save``, any other name): frames ``(B, 3, H, W)`` ImageNet-normalised
  in, maps ``(B, H', W')`` or ``(B, 1, H', W')`` out.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from pipeline import io
from pipeline.errors import PipelineError

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


class DepthError(PipelineError, RuntimeError):
    """A depth backend that cannot run as configured."""


class NotThisWorld(DepthError):
    """The ``oracle`` backend on a source without rendered depth (not the scenes world)."""


class NoDepth(Exception):
    """This clip has no depth from this backend (the message says why); the clip is recorded as
    skipped, the others go on."""


@dataclasses.dataclass(frozen=True)
class OracleParams:
    """``depth.oracle``: the scenes world's rendered depth.

    Args:
        relative: hand the depth on as disparity with a random scale in [0.5, 2] and shift in
            [-0.2, 0.2] of its mean per frame (seeded by ``base.seed`` and the clip), as a
            monocular network's relative depth.
    """

    relative: bool = False


@dataclasses.dataclass(frozen=True)
class MidasParams:
    """``depth.midas``: a MiDaS model from ``torch.hub``.

    Args:
        model: ``MiDaS_small`` (256 px input), ``DPT_Hybrid`` or ``DPT_Large`` (384 px).
        repo: the hub repository (``owner/name[:ref]``).
        batch_size: frames per forward pass.
    """

    model: Literal["MiDaS_small", "DPT_Hybrid", "DPT_Large"] = "MiDaS_small"
    repo: str = "intel-isl/MiDaS"
    batch_size: int = 16


@dataclasses.dataclass(frozen=True)
class FileParams:
    """``depth.file``: a local depth model.

    Args:
        path: a ``.pt2`` file (``torch.export.save``) or TorchScript (``torch.jit.save``).
        output: what it predicts: ``disparity`` (inverse depth, as MiDaS) or ``depth``.
        input_size: frames are resized to this side before the model.
        batch_size: frames per forward pass.
    """

    path: str | None = None
    output: Literal["disparity", "depth"] = "disparity"
    input_size: int = 256
    batch_size: int = 16


# MiDaS models: input side, normalisation (mean, std), and the weights file hubconf downloads
MIDAS_MODELS = {
    "MiDaS_small": (256, IMAGENET, "model-small-70d6b9c8.pt"),
    "DPT_Hybrid": (384, ((0.5,) * 3, (0.5,) * 3), "dpt_hybrid-midas-501f0c75.pt"),
    "DPT_Large": (384, ((0.5,) * 3, (0.5,) * 3), "dpt_large-midas-2f21e586.pt"),
}


def resize_maps(maps: torch.Tensor, size: int) -> np.ndarray:
    """Maps ``(T, h, w)`` resized to ``(T, size, size)`` (area averaging when shrinking,
    bilinear when growing), float32."""
    mode = "area" if maps.shape[-1] >= size and maps.shape[-2] >= size else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    out = F.interpolate(maps[:, None].float(), size=(size, size), mode=mode, **kw)[:, 0]
    return out.cpu().numpy().astype(np.float32)


def letterbox(maps: np.ndarray, canvas: int) -> np.ndarray:
    """Maps ``(T, h, w)`` of a source video placed as the download stage places its frames in the
    canonical ``canvas x canvas`` frame: scaled to fit (aspect kept), centred, NaN around."""
    t, h, w = maps.shape
    if h == w == canvas:
        return maps.astype(np.float32)
    scale = canvas / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    inner = F.interpolate(torch.from_numpy(maps[:, None].astype(np.float32)), size=(nh, nw))
    out = np.full((t, canvas, canvas), np.nan, np.float32)
    y, x = (canvas - nh) // 2, (canvas - nw) // 2
    out[:, y : y + nh, x : x + nw] = inner[:, 0].numpy()
    return out


class Oracle:
    """The scenes world's rendered depth at the sampled frames' times."""

    output = "depth"

    def __init__(self, params: OracleParams, *, source: Path | None, seed: int, **_: Any):
        if source is None:
            raise DepthError("depth.backend oracle needs the source folder (--source)")
        meta = Path(source) / "meta.json"
        if not meta.is_file():
            raise NotThisWorld(
                f"{meta}: missing; depth.backend oracle reads the synthetic scenes world"
            )
        world = json.loads(meta.read_text())["params"]
        if world.get("flavour") != "scenes":
            raise NotThisWorld(
                f"depth.backend oracle needs the scenes world (the only one with depth), the "
                f"source is {world.get('flavour') or 'not synthetic'}: use depth.backend midas"
            )
        self.truth, self.fps, self.seed = Path(source) / "truth", float(world["fps"]), seed
        self.params = params
        if params.relative:
            self.output = "disparity"
        self.made_by = {"kind": "oracle", "relative": params.relative, "seed": seed}

    def input_file(self, clip_id: str, video: Path) -> Path:
        """The file the clip's maps are made from (its bytes key the clip's part)."""
        return self.truth / f"{clip_id}.npz"

    def maps(self, clip_id: str, video: Path, times: np.ndarray, size: int, canvas: int):
        """The clip's maps ``(T, size, size)`` at the sampled frames' ``times`` (s), over the
        ``canvas``-px canonical frame."""
        path = self.input_file(clip_id, video)
        try:
            with np.load(path, allow_pickle=False) as z:
                depth = z["depth"]
        except (OSError, ValueError, KeyError) as err:
            raise NoDepth(f"{path}: unreadable ({type(err).__name__})") from None
        index = np.minimum(np.round(times * self.fps).astype(int), len(depth) - 1)
        z = depth[index].astype(np.float32) / 1000.0  # uint16 thousandths of a depth unit
        z = letterbox(z, canvas)
        if self.params.relative:
            z = self._relative(clip_id, z)
        return resize_maps(torch.from_numpy(z), size)

    def _relative(self, clip_id: str, z: np.ndarray) -> np.ndarray:
        digest = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "little")
        rng = np.random.default_rng([self.seed, digest])
        disparity = 1.0 / z
        scale = np.exp(rng.uniform(np.log(0.5), np.log(2.0), len(z)))
        mean = np.nanmean(disparity, axis=(1, 2))
        shift = rng.uniform(-0.2, 0.2, len(z)) * mean
        return disparity * scale[:, None, None] + shift[:, None, None]


class _Network:
    """A network that maps normalised frames to one map per frame."""

    input_size: int
    mean_std: tuple[tuple[float, ...], tuple[float, ...]]
    batch_size: int

    def __init__(self, device: torch.device):
        self.device = device

    def run(self, frames: np.ndarray) -> torch.Tensor:
        """Frames ``(T, H, W, 3)`` uint8 -> maps ``(T, h, w)`` on the CPU."""
        mean, std = (torch.tensor(v, device=self.device)[:, None, None] for v in self.mean_std)
        out = []
        for start in range(0, len(frames), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(frames[start : start + self.batch_size]))
            x = x.to(self.device).permute(0, 3, 1, 2).float() / 255.0
            x = F.interpolate(x, size=(self.input_size,) * 2, mode="bicubic", align_corners=False)
            with torch.inference_mode():
                y = self.net((x - mean) / std)
            out.append((y[:, 0] if y.dim() == 4 else y).float().cpu())
        return torch.cat(out)

    def input_file(self, clip_id: str, video: Path) -> Path:
        return video

    def maps(self, clip_id: str, video: Path, times: np.ndarray, size: int, canvas: int):
        from pipeline import media

        try:
            frames, sampled = media.sample_frames(video, self.fps)
        except media.MediaError as err:  # a corrupt video: recorded and skipped
            raise NoDepth(str(err).splitlines()[-1][:300]) from None
        if len(sampled) != len(times) or not np.allclose(sampled, times, atol=1e-3):
            raise NoDepth(
                f"{video} gives {len(sampled)} frames at {self.fps} fps, the detections have "
                f"{len(times)}: the media changed since detect ran (run `dvc repro`)"
            )
        return resize_maps(self.run(frames), size)


class Midas(_Network):
    """A MiDaS model (relative inverse depth) from ``torch.hub``."""

    output = "disparity"

    def __init__(self, params: MidasParams, *, device: torch.device, fps: float, **_: Any):
        super().__init__(device)
        self.input_size, self.mean_std, weights = MIDAS_MODELS[params.model]
        self.batch_size, self.fps = params.batch_size, fps
        hub = Path(torch.hub.get_dir())
        owner, name = params.repo.split(":")[0].split("/")
        ref = params.repo.split(":")[1] if ":" in params.repo else "master"
        needs = (
            "; MiDaS_small also loads rwightman/gen-efficientnet-pytorch the same way"
            if params.model == "MiDaS_small"
            else "; DPT models need the timm package"
        )
        try:
            net = torch.hub.load(params.repo, params.model, pretrained=True, trust_repo=True)
        except Exception as err:  # offline: URLError; a missing package (timm); a bad hash
            raise DepthError(
                f"could not load {params.model} from torch.hub {params.repo} "
                f"({type(err).__name__}: {str(err)[:300]}). Offline, put the repository's "
                f"code in {hub / f'{owner}_{name}_{ref}'} (github.com/{owner}/{name}, unzipped"
                f"{needs}) and the weights {weights} in {hub / 'checkpoints'} (the torch hub "
                "cache; set TORCH_HOME to move it), or use depth.backend file with an "
                "exported model"
            ) from err
        self.net = net.to(device).eval()
        self.made_by = {"kind": "midas", "model": params.model, "repo": params.repo}


class ModelFile(_Network):
    """A local depth model: exported (``.pt2``) or TorchScript."""

    def __init__(self, params: FileParams, *, device: torch.device, fps: float, **_: Any):
        super().__init__(device)
        if params.path is None:
            raise DepthError("depth.backend file needs depth.file.path (.pt2 or TorchScript)")
        path = Path(params.path)
        if not path.is_file():
            raise DepthError(f"{path}: not found (depth.file.path)")
        try:
            if path.suffix == ".pt2":
                self.net = torch.export.load(str(path)).module().to(device)
            else:
                self.net = torch.jit.load(str(path), map_location=device).eval()
        except Exception as err:
            raise DepthError(
                f"{path}: not an exported (.pt2) or TorchScript model ({type(err).__name__}: "
                f"{str(err)[:200]}); save yours with torch.export.save(torch.export.export("
                "model, (example,), dynamic_shapes=...), 'depth.pt2'), the batch dimension "
                "dynamic (docs/depth.md)"
            ) from None
        self.output, self.input_size = params.output, params.input_size
        self.mean_std, self.batch_size, self.fps = IMAGENET, params.batch_size, fps
        # the file's name and hash, not its path: the store must not depend on where it is kept
        self.made_by = {"kind": "file", "name": path.name, "sha256": io.sha256_file(path)}


BACKENDS = {"oracle": Oracle, "midas": Midas, "file": ModelFile}
