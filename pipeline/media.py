"""Encode and decode media with the ffmpeg binary of the imageio-ffmpeg wheel (no system ffmpeg).

Shapes: video frames ``(n_frames, height, width, 3)`` uint8 RGB; audio ``(n_samples,)`` float32 mono
in [-1, 1].
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import numpy as np

#: Flags that keep encoder versions and timestamps out of the file: same input, same bytes.
BITEXACT = [
    "-fflags",
    "+bitexact",
    "-flags:v",
    "+bitexact",
    "-flags:a",
    "+bitexact",
    "-map_metadata",
    "-1",
]


class MediaError(RuntimeError):
    """ffmpeg could not encode or decode a file; the message holds ffmpeg's last lines."""


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped in the imageio-ffmpeg wheel."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _run(args: list[str], what: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-hide_banner", *args],
        input=stdin,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.decode(errors="replace").strip().splitlines()[-5:])
        raise MediaError(f"ffmpeg failed on {what}:\n{tail}")
    return proc.stdout


def encode_mp4(
    path: str | Path,
    frames: np.ndarray,
    fps: int,
    audio_wav: str | Path,
    crf: int = 20,
    audio_bitrate: str = "96k",
) -> None:
    """Encode frames (H.264, yuv420p, one thread for reproducible bytes) and a wav (AAC) to mp4."""
    n, h, w, _ = frames.shape
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8 (n, h, w, 3), got {frames.dtype} {frames.shape}")
    _run(
        [
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{w}x{h}",
            "-r",
            str(fps),
            "-i",
            "pipe:0",
            "-i",
            str(audio_wav),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            str(crf),
            "-pix_fmt",
            "yuv420p",
            "-threads",
            "1",
            "-c:a",
            "aac",
            "-b:a",
            audio_bitrate,
            *BITEXACT,
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            str(path),
        ],
        str(path),
        stdin=np.ascontiguousarray(frames).tobytes(),
    )


def decode_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode the first audio stream to mono float32 at ``sample_rate``."""
    raw = _run(
        ["-i", str(path), "-vn", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "pipe:1"],
        str(path),
    )
    return np.frombuffer(raw, np.float32).copy()


def decode_frames(path: str | Path) -> np.ndarray:
    """Decode every video frame to RGB uint8 ``(n, h, w, 3)``."""
    w, h = probe(path)["size"]
    raw = _run(["-i", str(path), "-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"], str(path))
    return np.frombuffer(bytearray(raw), np.uint8).reshape(-1, h, w, 3)  # writable


def probe(path: str | Path) -> dict:
    """Duration, size, fps and audio sample rate, read from ffmpeg's header dump (no ffprobe)."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True, check=False
    )
    text = proc.stderr
    out: dict = {}
    if m := re.search(r"Duration: (\d+):(\d+):([\d.]+)", text):
        out["duration"] = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
    if m := re.search(r"Video: .*?, (\d+)x(\d+)", text):
        out["size"] = (int(m[1]), int(m[2]))
    if m := re.search(r"([\d.]+) fps", text):
        out["fps"] = float(m[1])
    if m := re.search(r"Audio: .*?, (\d+) Hz", text):
        out["sample_rate"] = int(m[1])
    if "duration" not in out:
        raise MediaError(f"{path}: not a media file ffmpeg can read")
    return out


def cut_clip(
    src: str | Path,
    start: float,
    seconds: float,
    wav_out: str | Path,
    mp4_out: str | Path,
    *,
    sample_rate: int,
    fps: int,
    size: int,
) -> None:
    """Cut ``[start, start + seconds)`` of ``src`` into the pipeline's canonical form.

    Audio: mono 16-bit PCM wav at ``sample_rate``. Video: H.264 mp4 (no audio) at ``fps``, the frame
    scaled to fit ``size`` x ``size`` with its aspect kept and padded with black. Outputs may be
    temporary names: the formats are given explicitly.
    """
    fit = (
        f"scale={size}:{size}:force_original_aspect_ratio=decrease,"
        f"pad={size}:{size}:(ow-iw)/2:(oh-ih)/2,setsar=1"
    )
    _run(
        [
            "-y",
            "-ss",
            f"{start:.6f}",
            "-t",
            f"{seconds:.6f}",
            "-i",
            str(src),
            "-map",
            "0:a:0",
            "-ac",
            "1",
            "-ar",
            str(sample_rate),
            "-c:a",
            "pcm_s16le",
            *BITEXACT,
            "-f",
            "wav",
            str(wav_out),
            "-map",
            "0:v:0",
            "-r",
            str(fps),
            "-vf",
            fit,
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "20",
            "-pix_fmt",
            "yuv420p",
            "-threads",
            "1",
            "-an",
            *BITEXACT,
            "-f",
            "mp4",
            str(mp4_out),
        ],
        str(src),
    )


def sample_frames(video: str | Path, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Frames of ``video`` at ``fps`` (the nearest decoded frame) ``(T, H, W, 3)`` and their
    times (s) ``(T,)``."""
    frames = decode_frames(video)
    src_fps = probe(video).get("fps") or fps
    n = max(1, int(np.floor(len(frames) / src_fps * fps + 1e-6)))
    times = np.arange(n) / fps
    index = np.minimum(np.round(times * src_fps).astype(int), len(frames) - 1)
    return frames[index], times.astype(np.float32)


def to_tensor(image: np.ndarray):
    """A uint8 frame ``(H, W, 3)`` as torchvision's detectors take it: float ``(3, H, W)`` in
    [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
