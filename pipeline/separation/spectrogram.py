"""Spectrograms as AVSGS uses them (paper section 4, after Sound of Pixels).

Audio at 11,025 Hz in windows of 65,535 samples (about 6 s); STFT with a 1,022-sample Hann window
and hop 256 gives ``(512 freq, 256 time)``; the magnitude is resampled to a log-frequency axis of
256 bins, so the separator sees ``(256, 256)``. Masks live on that log-frequency grid and are
resampled back to the 512 linear bins before they weight the mixture's complex STFT.

Shapes: waveforms ``(batch, samples)``; complex STFT ``(batch, 512, frames)``; magnitudes and masks
``(batch, 1, freq, frames)``.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

EPS = 1e-3  # added to magnitudes before the log


@dataclasses.dataclass(frozen=True)
class SpecConfig:
    """STFT and log-frequency settings (the paper's by default)."""

    sample_rate: int = 11025
    n_fft: int = 1022
    hop: int = 256
    samples: int = 65535
    log_bins: int = 256

    @property
    def linear_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frames(self) -> int:
        return self.samples // self.hop + 1


def stft(wav: torch.Tensor, cfg: SpecConfig) -> torch.Tensor:
    """Complex STFT ``(batch, linear_bins, frames)`` of ``wav (batch, samples)``."""
    if wav.dim() != 2:
        raise ValueError(f"stft expects (batch, samples), got {tuple(wav.shape)}")
    window = torch.hann_window(cfg.n_fft, device=wav.device, dtype=wav.dtype)
    return torch.stft(wav, cfg.n_fft, cfg.hop, window=window, center=True, return_complex=True)


def istft(spec: torch.Tensor, cfg: SpecConfig, length: int) -> torch.Tensor:
    """Waveform ``(batch, length)`` from a complex STFT ``(batch, linear_bins, frames)``."""
    window = torch.hann_window(cfg.n_fft, device=spec.device, dtype=spec.real.dtype)
    return torch.istft(spec, cfg.n_fft, cfg.hop, window=window, center=True, length=length)


def _grid(out_rows: int, positions: torch.Tensor, frames: int, batch: int) -> torch.Tensor:
    """A ``grid_sample`` grid reading row ``positions`` (in [-1, 1]) at every frame."""
    x = torch.linspace(-1, 1, frames, dtype=positions.dtype, device=positions.device)
    grid = torch.stack(torch.broadcast_tensors(x[None, :], positions[:, None]), dim=-1)
    return grid[None].expand(batch, out_rows, frames, 2)


def to_log_freq(mag: torch.Tensor, cfg: SpecConfig) -> torch.Tensor:
    """Resample ``(batch, 1, linear_bins, frames)`` onto ``log_bins`` log-spaced rows: row ``i``
    reads linear bin ``10 ** (i / (log_bins - 1) * log10(linear_bins)) - 1``."""
    n_lin, n_log = mag.shape[-2], cfg.log_bins
    i = torch.arange(n_log, dtype=torch.float64, device=mag.device)
    src = torch.pow(10.0, i / (n_log - 1) * math.log10(n_lin)) - 1  # float64: exact at the ends
    pos = (src / (n_lin - 1) * 2 - 1).to(mag.dtype)
    grid = _grid(n_log, pos, mag.shape[-1], mag.shape[0])
    return F.grid_sample(mag, grid, mode="bilinear", align_corners=True)


def to_linear_freq(mask: torch.Tensor, cfg: SpecConfig) -> torch.Tensor:
    """The inverse resampling: ``(batch, 1, log_bins, frames)`` -> ``(batch, 1, linear_bins,
    frames)``, linear bin ``k`` reading log row ``log10(k + 1) / log10(linear_bins) * (log_bins -
    1)``."""
    n_lin, n_log = cfg.linear_bins, mask.shape[-2]
    k = torch.arange(n_lin, dtype=torch.float64, device=mask.device)
    src = torch.log10(k + 1) / math.log10(n_lin) * (n_log - 1)
    pos = (src / (n_log - 1) * 2 - 1).to(mask.dtype)
    grid = _grid(n_lin, pos, mask.shape[-1], mask.shape[0])
    return F.grid_sample(mask, grid, mode="bilinear", align_corners=True)


def log_freq_magnitude(wav: torch.Tensor, cfg: SpecConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The complex STFT ``(batch, linear_bins, frames)`` and the log-frequency magnitude
    ``(batch, 1, log_bins, frames)`` of ``wav (batch, samples)``."""
    spec = stft(wav, cfg)
    return spec, to_log_freq(spec.abs()[:, None], cfg)


def log_mag(mag: torch.Tensor) -> torch.Tensor:
    """``log(mag + EPS)``: what the U-Net and the classifier see."""
    return torch.log(mag + EPS)


def apply_mask(
    spec: torch.Tensor, mask: torch.Tensor, cfg: SpecConfig, length: int
) -> torch.Tensor:
    """Waveforms ``(batch, length)``: a log-frequency ``mask (batch, 1, log_bins, frames)``
    resampled to linear frequency, times the mixture's complex STFT ``spec``, inverted with its
    phase."""
    linear = to_linear_freq(mask, cfg)[:, 0].clamp(0, None)
    return istft(spec * linear, cfg, length)
