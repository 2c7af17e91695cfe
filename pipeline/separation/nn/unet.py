"""Conditioned U-Net: a mask per (mixture, embedding) pair, conditioned at the bottleneck."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _channels(ngf: int, levels: int) -> list[int]:
    return [ngf * min(2**i, 8) for i in range(levels)]


class ConditionedUNet(nn.Module):
    r"""AVSGS's audio separator network (section 3.2, supplement B.4; the U-Net of Sound of
    Pixels with the condition concatenated at the bottleneck instead of applied at the output).

    ``levels`` stride-2 4x4 convolutions (LeakyReLU 0.2, BatchNorm) take the log-frequency
    magnitude ``(1, 256, 256)`` to a ``(8 * ngf, 2, 2)`` bottleneck; the embedding
    :math:`\mathbf{y}_i` is tiled 2x2 and concatenated along channels; ``levels`` stride-2 4x4
    up-convolutions (ReLU, BatchNorm), each fed the encoder's map of the same resolution (skip
    connections), give the mask logits :math:`\hat{\mathbf{M}}_i` before the sigmoid.

    The encoder runs once per mixture (:meth:`encode`) and the decoder once per embedding
    (:meth:`decode`), so :math:`N+1` masks of one mixture share one encoder pass.

    Args:
        ngf: channels of the first level; level ``i`` has ``ngf * min(2**i, 8)``.
        levels: down / up convolutions (7: 256 -> 2).
        cond_channels: embedding size :math:`d`.
        skip: skip connections (an ablation switch).

    Shapes:
        - **encode:** ``x (B, 1, F, T)`` -> a list of ``levels`` maps, the last ``(B, 8 ngf,
          F / 2**levels, T / 2**levels)``
        - **decode:** maps, ``cond (K, d)``, ``index (K,)`` (the mixture of each embedding) ->
          mask logits ``(K, 1, F, T)``
    """

    def __init__(self, ngf: int = 64, levels: int = 7, cond_channels: int = 512, skip: bool = True):
        super().__init__()
        c = _channels(ngf, levels)
        self.skip, self.levels = skip, levels
        self.input_norm = nn.BatchNorm2d(1)
        down = [nn.Conv2d(1, c[0], 4, 2, 1)]
        for i in range(1, levels):
            layers = [nn.LeakyReLU(0.2), nn.Conv2d(c[i - 1], c[i], 4, 2, 1)]
            if i < levels - 1:
                layers.append(nn.BatchNorm2d(c[i]))
            down.append(nn.Sequential(*layers))
        self.down = nn.ModuleList(down)
        up = []
        for i in range(levels - 1, -1, -1):
            cin = c[i] + cond_channels if i == levels - 1 else c[i] * (2 if skip else 1)
            cout = c[i - 1] if i > 0 else 1
            layers = [nn.ReLU(), nn.ConvTranspose2d(cin, cout, 4, 2, 1)]
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            up.append(nn.Sequential(*layers))
        self.up = nn.ModuleList(up)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(
                f"ConditionedUNet expects (batch, 1, freq, time), got {tuple(x.shape)}"
            )
        if x.shape[-1] % 2**self.levels or x.shape[-2] % 2**self.levels:
            raise ValueError(
                f"freq and time must be multiples of {2**self.levels}, got {tuple(x.shape)}"
            )
        maps, h = [], self.input_norm(x)
        for layer in self.down:
            h = layer(h)
            maps.append(h)
        return maps

    def decode(
        self, maps: list[torch.Tensor], cond: torch.Tensor, index: torch.Tensor
    ) -> torch.Tensor:
        """Mask logits of each embedding's mixture. Every up-convolution of the paper reads a
        concatenation ``cat([h, skip])`` (the first, ``cat([bottleneck, cond])``) in which the
        encoder's part is the same for all ``K / B`` embeddings of a mixture. A convolution of a
        concatenation is the sum of its parts' convolutions, so that part is convolved once per
        mixture and gathered, not once per embedding: the same function with about half the
        decoder's arithmetic (``tests/separation/test_model.py`` checks it against the
        concatenation)."""
        h = cond[:, :, None, None].expand(-1, -1, *maps[-1].shape[-2:])
        h = _up(self.up[0], h, maps[-1], index, shared_first=True)
        for k, layer in enumerate(self.up[1:], 1):
            skip = maps[self.levels - 1 - k]  # the encoder map at h's resolution
            h = _up(layer, h, skip, index, shared_first=False) if self.skip else layer(h)
        return h


def _up(
    layer: nn.Sequential,
    own: torch.Tensor,
    shared: torch.Tensor,
    index: torch.Tensor,
    shared_first: bool,
) -> torch.Tensor:
    """``layer`` (ReLU, ConvTranspose2d, optional BatchNorm) applied to ``cat([shared[index],
    own])`` (``shared_first``) or ``cat([own, shared[index]])``, with the ``shared`` part
    ``(B, ..)`` convolved once per mixture and the ``own`` part ``(K, ..)`` once per embedding."""
    relu, conv, *rest = layer
    w = conv.weight  # (in, out, kh, kw): the input channels in concatenation order
    cut = shared.shape[1] if shared_first else own.shape[1]
    w_shared, w_own = (w[:cut], w[cut:]) if shared_first else (w[cut:], w[:cut])

    def up(x, weight, bias):
        x = relu(x)
        if _by_phases(conv, x, weight):
            return _UpByPhases.apply(x, weight, bias)
        return F.conv_transpose2d(
            x,
            weight,
            bias,
            conv.stride,
            conv.padding,
            conv.output_padding,
            conv.groups,
            conv.dilation,
        )

    h = up(own, w_own, None) + up(shared, w_shared, conv.bias).index_select(0, index)
    for module in rest:
        h = module(h)
    return h


def _by_phases(conv: nn.ConvTranspose2d, x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :class:`_UpByPhases` computes this up-convolution: on the CPU, for the U-Net's
    4x4 stride-2 layers to at most 8 channels, where oneDNN's transposed convolution attains a
    few GFLOP/s and the same sums as one convolution run 1.3-2x faster (``docs/model.md``,
    "Speed")."""
    return (
        x.device.type == "cpu"
        and weight.shape[1] <= 8
        and conv.kernel_size == (4, 4)
        and conv.stride == (2, 2)
        and conv.padding == (1, 1)
        and conv.output_padding == (0, 0)
        and conv.dilation == (1, 1)
        and conv.groups == 1
    )


def phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """The 4x4 stride-2 up-convolution's ``weight (in, out, 4, 4)`` as the ``(4 out, in, 2, 2)``
    kernels of one ordinary convolution, one ``out`` block per output phase (row parity ``a``,
    column parity ``b``). With padding 1, output row ``2m + a`` sums input rows ``m + a - 1`` and
    ``m + a`` (rows of the input padded by one: ``m + a`` and ``m + a + 1``) with kernel rows
    ``3 - a`` and ``1 - a``; likewise for columns."""
    k = weight.flip(-2, -1)  # k[.., j] = weight[.., 3 - j]: phase a reads taps a and a + 2
    phases = [k[:, :, a::2, b::2] for a in (0, 1) for b in (0, 1)]  # each (in, out, 2, 2)
    return torch.cat(phases, 1).transpose(0, 1)


def _interleave(y: torch.Tensor, out: int) -> torch.Tensor:
    """``(B, 4 out, H + 1, W + 1)`` phase maps -> ``(B, out, 2H, 2W)``: phase ``(a, b)`` is
    cropped at ``(a, b)`` and written to rows ``a::2`` and columns ``b::2``."""
    b, _, h1, w1 = y.shape
    h, w = h1 - 1, w1 - 1
    y = y.view(b, 2, 2, out, h1, w1)
    rows = [torch.stack([y[:, a, c, :, a : a + h, c : c + w] for c in (0, 1)], -1) for a in (0, 1)]
    return torch.stack(rows, 3).reshape(b, out, 2 * h, 2 * w)


class _UpByPhases(torch.autograd.Function):
    """``conv_transpose2d(x, weight, bias, stride=2, padding=1)`` for a 4x4 kernel. Forward: each
    of the four output phases is an ordinary 2x2 convolution of the padded input
    (:func:`phase_kernels`), so the four run as one convolution to ``4 out`` channels and are
    interleaved: the same products, summed in another order. Backward: the transposed
    convolution's own gradients (``aten.convolution_backward``), as autograd computes them for
    ``conv_transpose2d``."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        y = F.conv2d(F.pad(x, (1, 1, 1, 1)), phase_kernels(weight))
        out = _interleave(y, weight.shape[1])
        return out if bias is None else out + bias[:, None, None]

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        gx, gw, _ = torch.ops.aten.convolution_backward(
            grad.contiguous(),
            x,
            weight,
            None,
            [2, 2],
            [1, 1],
            [1, 1],
            True,
            [0, 0],
            1,
            [need_x, need_w, False],
        )
        gb = grad.sum((0, 2, 3)) if need_b and ctx.has_bias else None
        return gx, gw, gb


def masks_from_embeddings(
    unet: ConditionedUNet,
    classifier: nn.Module | None,
    mix_mag: torch.Tensor,
    y: torch.Tensor,
    mixture: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The separators' shared head: one mask of its mixture per embedding, and with a
    ``classifier`` the class logits of each masked spectrogram.

    Shapes: ``mix_mag (B, 1, F, T)``, embeddings ``y (G, S, d)``, ``mixture (G,)`` -> ``masks
    (G, S, 1, F, T)`` in [0, 1], ``embeddings`` (``y``), ``class_logits (G, S, C)``."""
    from pipeline.separation.spectrogram import log_mag

    masks = torch.sigmoid(mask_logits(unet, mix_mag, y, mixture))
    out = {"masks": masks, "embeddings": y}
    if classifier is not None:  # inside forward, so DistributedDataParallel sees its use
        separated = log_mag(masks * mix_mag[mixture][:, None]).flatten(0, 1)
        out["class_logits"] = classifier(separated).view(*y.shape[:2], -1)
    return out


def mask_logits(
    unet: ConditionedUNet, mix_mag: torch.Tensor, y: torch.Tensor, mixture: torch.Tensor
) -> torch.Tensor:
    """Mask logits ``(G, S, 1, F, T)``: the mixture encoded once, decoded once per embedding of
    ``y (G, S, d)`` (video ``g`` in mixture ``mixture[g]``)."""
    from pipeline.separation.spectrogram import log_mag

    g, s, d = y.shape
    maps = unet.encode(log_mag(mix_mag))
    logits = unet.decode(maps, y.reshape(g * s, d), mixture.repeat_interleave(s))
    return logits.view(g, s, *logits.shape[1:])
