#!/usr/bin/env python3
"""Load stylefleet model files in PyTorch and stylize images with them.

Needs only PyTorch >= 1.8 (and Pillow for the command line). Three kinds of network:

* per-style: Johnson et al.'s transformer, one trained style per file;
* conditional (Dumoulin et al. 2017, "conditional instance normalization"): one
  transformer for N styles, where only the instance norms' scale and shift depend on the
  style. A sample can use one style or a convex blend of them.
* arbitrary (Ghiasi et al. 2017): one transformer for any style image; a style predictor
  maps the image's loss-network statistics to every instance norm's scale and shift
  (see "Arbitrary-style networks" below). Only files written by `stylefleet export`
  carry the loss-network layers it needs.

Usage from Python::

    import stylefleet_torch as sf
    model = sf.load_model("model.pt")           # model.net, model.styles, model.metadata
    out = sf.stylize(model, image, style="mosaic")               # image: [N x] 3 x H x W, 0..255
    out = sf.stylize(model, image, blend={"mosaic": 0.7, "candy": 0.3})
    out = sf.stylize(arbitrary_model, image, style_images=[painting], strength=0.8)

From the shell::

    stylefleet_torch.py MODEL INPUT_IMAGE OUTPUT_IMAGE [--style NAME | --blend NAME=W,NAME=W]
    stylefleet_torch.py ARBITRARY_EXPORT INPUT_IMAGE OUTPUT_IMAGE --style-image PAINTING
    stylefleet_torch.py MODEL --list

The model file format
---------------------
A file written by `torch.save` (or LibTorch's `torch::pickle_save`) holding a dict from
names to tensors; `torch.load` reads it.

Parameters, under the PyTorch example's TransformerNet names (so a per-style file and the
example's own `.pth` state dicts are interchangeable): `conv1.conv2d.weight`,
`conv1.conv2d.bias`, `in1.weight`, `in1.bias`, `conv2.*`, `in2.*`, `conv3.*`, `in3.*`,
`res1.conv1.conv2d.*`, `res1.in1.*`, `res1.conv2.conv2d.*`, `res1.in2.*` (res1..res5),
`deconv1.*`, `in4.*`, `deconv2.*`, `in5.*`, `deconv3.conv2d.*`.

* Per-style network: every instance norm's `weight` and `bias` has shape [C].
* Conditional network: every instance norm's `weight` and `bias` (in1..in5,
  resK.in1, resK.in2) has shape [N, C]; row s belongs to style s. The convolutions are
  shared by all styles.

Metadata: entries whose keys start with `stylefleet.`. Strings are 1-D uint8 tensors of
UTF-8 bytes, integers int64 scalars:

* `stylefleet.network`: b"conditional" for a conditional network (absent: per-style);
* `stylefleet.styles`: a conditional network's N style names joined by "\\n", in row order;
* `stylefleet.style`: a per-style network's style name;
* `stylefleet.head` (b"linear"), `stylefleet.job`, `stylefleet.image_size`,
  `stylefleet.checksum`, and in checkpoints optimizer and position state: not needed
  to run the network.

`stylefleet export --model M --to F` writes the parameters, plus `stylefleet.network` and
`stylefleet.styles` for a conditional network; `--keep-names` adds a per-style network's
`stylefleet.style`, `stylefleet.job` and (from a checkpoint) `stylefleet.step`. Running statistics (`*.running_mean`,
`*.running_var`, `*.num_batches_tracked`, found in old PyTorch-example files) are ignored,
as stylefleet ignores them: instance norm always uses the input's own statistics.

The network
-----------
Input and output: B x 3 x H x W RGB floats in 0..255; H and W multiples of 4 for the raw
network (`stylize` pads any size). The head is linear: the output is not clamped inside
the network, only when it becomes an image. Instance norm normalizes each sample and
channel over H x W (biased variance, eps 1e-5), then scales and shifts per channel. For a
conditional network and style s the scale and shift are row s; for a blend with weights w
(w >= 0, sum 1) they are `w @ weight` and `w @ bias`, with the same convolutions.

Arbitrary-style networks
------------------------
`stylefleet.network` = b"arbitrary". The transformer's convolutions are as above; its
instance norms have no parameters of their own. Their scales and shifts, 2,560 numbers per
image, come from the predictor (`predictor.bottleneck.*`: Linear(S, E),
`predictor.to_norms.*`: Linear(E, 2560)) in this order: in1 (32 scales, 32 shifts), in2
(64, 64), in3 (128, 128), then for res1..res5 in1 (128, 128) and in2 (128 scales only:
its shift is 0), in4 (64, 64), in5 (32, 32).

A style image becomes norms so:

1. resized as stylefleet resizes (the centre square, antialiased bilinear as PIL's
   BILINEAR, rounded to whole levels) to `stylefleet.style_image_size` pixels square;
2. summarized by the loss network (VGG-16, `stylefleet.vgg.features.N.weight` and
   `.bias` down to the deepest of `stylefleet.predictor_layers`, layer indices 0..12 in
   VGG order; input (x * input_scale / 255 - mean) / std with `stylefleet.vgg.input_scale`,
   `.mean`, `.std`; a 3x3 convolution with padding 1 and a ReLU per layer, a 2x2 max pool
   after layers 1, 3, 6 and 9): each listed layer's per-channel mean and standard
   deviation (square root of the biased variance plus 1e-5), concatenated in list order
   (S numbers);
3. embedded: the summary minus its mean, over the square root of its biased variance plus
   1e-5, through `bottleneck`, divided by S (E numbers);
4. the norms: `to_norms(embedding / E)`.

Several style images blend by weights (>= 0, sum 1) on their embeddings. A strength s
in 0..1 gives each photo `s * style_embedding + (1 - s) * photo_embedding`, the photo's own
embedding computed as a style image's.
"""
import argparse
import inspect
import math
import os
import pickle
import sys
from typing import Dict, List, NamedTuple, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "ConditionalInstanceNorm2d", "PredictedInstanceNorm2d", "StylePredictor", "TransformerNet",
    "Model", "load_model", "read_tensor_file", "style_argument", "parse_blend",
    "pad_for_network", "stylize", "arbitrary_norms", "resize_centre_crop", "luma",
    "preserve_colour", "to_levels", "main",
]

METADATA_PREFIX = "stylefleet."
CONDITIONAL = "conditional"
ARBITRARY = "arbitrary"
VGG_PREFIX = "stylefleet.vgg."
# VGG-16's 13 convolutions: torchvision's vgg16().features index of each, its output
# channels, and the layers a 2x2 max pool follows (when a deeper layer is needed).
_VGG_FEATURE_INDEX = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_VGG_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
_VGG_POOL_AFTER = (1, 3, 6, 9, 12)
# An arbitrary-style network's norms in their order: (name, channels, has a shift).
_NORM_SLOTS = ([("in1", 32, True), ("in2", 64, True), ("in3", 128, True)]
               + [(f"res{k}.in{j}", 128, j == 1) for k in range(1, 6) for j in (1, 2)]
               + [("in4", 64, True), ("in5", 32, True)])
NORM_PARAMETER_COUNT = sum(c * (2 if shifted else 1) for _, c, shifted in _NORM_SLOTS)
# stylefleet refuses style images smaller than this on a side for an arbitrary network,
# predictors with more embedding numbers than this, and training style image sizes
# (what style images are resized to) outside these.
MIN_STYLE_IMAGE_SIDE = 32
MAX_EMBEDDING_SIZE = 4096
MIN_TRAINING_STYLE_SIZE, MAX_TRAINING_STYLE_SIZE = 16, 4096
LINEAR_HEAD = "linear"
# Blend weights must add up to 1 within this (they come from decimal text).
BLEND_SUM_TOLERANCE = 1e-6
# Keys that PyTorch-example files may carry from old InstanceNorm2d versions; unused.
_STALE_STAT_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")
_STRING_METADATA = ("head", "job", "style", "styles", "network", "loss_network")


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm whose affine scale and shift are chosen per sample among N styles.

    `weight` and `bias` are [num_styles, channels] Parameters (row s: style s), so that
    state-dict names match the per-style network's `inK.weight` / `inK.bias`.
    """

    def __init__(self, num_styles: int, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_styles, channels))
        self.bias = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """x: B x C x H x W. style: a LongTensor [B] of row indices, or a float [B, N] of
        blend weights (each sample's scale and shift are then its weights @ the rows)."""
        if style.dtype == torch.long:
            scale, shift = self.weight[style], self.bias[style]
        else:
            scale, shift = style @ self.weight, style @ self.bias
        return _instance_norm_per_sample(x, scale, shift, self.eps)


def _instance_norm_per_sample(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                              eps: float) -> torch.Tensor:
    """Instance norm of x (B x C x H x W) with each sample's own scale and shift ([B, C])."""
    b, c, h, w = x.shape
    # One channel per (sample, channel) pair: the per-sample scale and shift go through
    # the same instance_norm call that nn.InstanceNorm2d makes with its own affine.
    y = F.instance_norm(x.reshape(1, b * c, h, w), weight=scale.reshape(b * c),
                        bias=shift.reshape(b * c), eps=eps)
    return y.reshape(b, c, h, w)


def _per_sample_rows(values: torch.Tensor, batch: int, width: int, what: str) -> torch.Tensor:
    """`values` of shape [width] (every sample) or [batch, width] as [batch, width]; a
    ValueError naming `what` otherwise."""
    if values.dim() == 1 and values.shape[0] == width:
        values = values.expand(batch, width)
    if values.shape != (batch, width):
        raise ValueError(f"{what} must have shape [{width}] or [{batch}, {width}], got "
                         f"{list(values.shape)}")
    return values


class PredictedInstanceNorm2d(nn.Module):
    """An arbitrary-style network's instance norm: no parameters; each sample's scale and
    shift are its `channels` numbers from `offset` of the norms [B, 2560] (then as many
    shifts when `shifted`, else shift 0)."""

    def __init__(self, channels: int, offset: int, shifted: bool, eps: float = 1e-5):
        super().__init__()
        self.channels, self.offset, self.shifted, self.eps = channels, offset, shifted, eps

    def forward(self, x: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        scale = norms[:, self.offset:self.offset + c]
        shift = (norms[:, self.offset + c:self.offset + 2 * c] if self.shifted
                 else torch.zeros_like(scale))
        return _instance_norm_per_sample(x, scale, shift, self.eps)


class _ConvLayer(nn.Module):
    """Optional nearest upsampling, reflection padding of kernel // 2, convolution."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, upsample: int = 1):
        super().__init__()
        self.upsample = upsample
        self.pad = kernel // 2
        self.conv2d = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv2d(F.pad(x, [self.pad] * 4, mode="reflect"))


def _norm_maker(num_styles: int, arbitrary: bool):
    """A function of a norm's channel count that makes the network's norms, called in the
    order of _NORM_SLOTS (an arbitrary-style network's norms take their place in it)."""
    if arbitrary:
        slots, offset = iter(_NORM_SLOTS), [0]

        def make(channels: int) -> nn.Module:
            _, expected, shifted = next(slots)
            assert expected == channels
            layer = PredictedInstanceNorm2d(channels, offset[0], shifted)
            offset[0] += channels * (2 if shifted else 1)
            return layer
        return make
    if num_styles == 0:
        return lambda channels: nn.InstanceNorm2d(channels, affine=True)
    return lambda channels: ConditionalInstanceNorm2d(num_styles, channels)


def _norm(layer: nn.Module, x: torch.Tensor, style: Optional[torch.Tensor]) -> torch.Tensor:
    return layer(x) if style is None else layer(x, style)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int, make_norm):
        super().__init__()
        self.conv1 = _ConvLayer(channels, channels, 3, 1)
        self.in1 = make_norm(channels)
        self.conv2 = _ConvLayer(channels, channels, 3, 1)
        self.in2 = make_norm(channels)

    def forward(self, x: torch.Tensor, style: Optional[torch.Tensor]) -> torch.Tensor:
        y = F.relu(_norm(self.in1, self.conv1(x), style))
        return _norm(self.in2, self.conv2(y), style) + x


class TransformerNet(nn.Module):
    """Johnson et al.'s transformer with the PyTorch example's parameter names, linear head.

    num_styles 0: the per-style network (nn.InstanceNorm2d with affine, loads the PyTorch
    example's state dicts); num_styles N > 0: the conditional network for N styles;
    `predictor` given: the arbitrary-style network, whose norms take each sample's scales
    and shifts from the norms argument (the predictor's parameters are in its state dict).
    """

    def __init__(self, num_styles: int = 0, predictor: Optional["StylePredictor"] = None):
        super().__init__()
        if num_styles < 0:
            raise ValueError(f"num_styles must be >= 0, got {num_styles}")
        if num_styles > 0 and predictor is not None:
            raise ValueError("a network is conditional or arbitrary-style, not both")
        self.num_styles = num_styles
        norm = _norm_maker(num_styles, predictor is not None)
        self.conv1, self.in1 = _ConvLayer(3, 32, 9, 1), norm(32)
        self.conv2, self.in2 = _ConvLayer(32, 64, 3, 2), norm(64)
        self.conv3, self.in3 = _ConvLayer(64, 128, 3, 2), norm(128)
        self.res1, self.res2, self.res3 = (_ResidualBlock(128, norm) for _ in range(3))
        self.res4, self.res5 = (_ResidualBlock(128, norm) for _ in range(2))
        self.deconv1, self.in4 = _ConvLayer(128, 64, 3, 1, upsample=2), norm(64)
        self.deconv2, self.in5 = _ConvLayer(64, 32, 3, 1, upsample=2), norm(32)
        self.deconv3 = _ConvLayer(32, 3, 9, 1)
        self.predictor = predictor

    @property
    def conditional(self) -> bool:
        return self.num_styles > 0

    @property
    def arbitrary(self) -> bool:
        return self.predictor is not None

    def forward(self, x: torch.Tensor, style=None) -> torch.Tensor:
        """x: B x 3 x H x W, RGB 0..255, H and W multiples of 4; returns the same shape,
        unclamped.

        style (conditional and arbitrary-style networks; must be None for a per-style one):
          * an arbitrary-style network's norms: a float tensor [2560] (every sample) or
            [B, 2560] (one per sample), as StylePredictor.norms_of or arbitrary_norms give;
          * a conditional network's int: that style's row for every sample;
          * a LongTensor of shape [B] (or a 0-d one): each sample's own style;
          * a float tensor of shape [N] (one blend for all samples) or [B, N] (one per
            sample): the rows combined with these weights. Any weights are accepted here
            (extrapolation included); `stylize` insists on w >= 0, sum 1.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a B x 3 x H x W input, got shape {list(x.shape)}")
        selector = self._style_selector(style, x.shape[0], x.device)
        y = F.relu(_norm(self.in1, self.conv1(x), selector))
        y = F.relu(_norm(self.in2, self.conv2(y), selector))
        y = F.relu(_norm(self.in3, self.conv3(y), selector))
        for block in (self.res1, self.res2, self.res3, self.res4, self.res5):
            y = block(y, selector)
        y = F.relu(_norm(self.in4, self.deconv1(y), selector))
        y = F.relu(_norm(self.in5, self.deconv2(y), selector))
        return self.deconv3(y)

    def _style_selector(self, style, batch: int, device) -> Optional[torch.Tensor]:
        """`style` as a LongTensor [batch] of rows or a float [batch, N] of blend weights
        (conditional), or float [batch, 2560] norms (arbitrary)."""
        if self.arbitrary:
            p = NORM_PARAMETER_COUNT
            if not isinstance(style, torch.Tensor) or not style.is_floating_point():
                raise ValueError(f"an arbitrary-style network needs its norms: a float tensor "
                                 f"[{p}] or [{batch}, {p}] (arbitrary_norms gives them)")
            return _per_sample_rows(style.to(device, torch.float32), batch, p, "norms")
        if not self.conditional:
            if style is not None:
                raise ValueError("a per-style network takes no style argument")
            return None
        n = self.num_styles
        if style is None:
            raise ValueError(f"a conditional network of {n} styles needs a style "
                             "(an index, per-sample indices or blend weights)")
        if isinstance(style, bool) or not isinstance(style, (int, torch.Tensor)):
            raise ValueError(f"style must be an int or a tensor, got {type(style).__name__}")
        if isinstance(style, int):
            style = torch.tensor(style, dtype=torch.long)
        style = style.to(device)
        if not style.is_floating_point():
            style = style.long()
            if style.dim() == 0:
                style = style.expand(batch)
            if style.shape != (batch,):
                raise ValueError(f"per-sample style indices must have shape [{batch}], "
                                 f"got {list(style.shape)}")
            if batch > 0 and (style.min() < 0 or style.max() >= n):
                raise ValueError(f"style index out of range 0..{n - 1}: {style.tolist()}")
            return style
        return _per_sample_rows(style.to(self.in1.weight.dtype), batch, n, "blend weights")


class StylePredictor(nn.Module):
    """An arbitrary-style network's style predictor: style images to norms (see the module
    docstring, "Arbitrary-style networks"). Its trainable part, `bottleneck` and
    `to_norms`, is in the state dict; the loss network's layers (frozen, from the export's
    `stylefleet.vgg.*`) and input convention are buffers outside it."""

    def __init__(self, summary_layers: List[int], embedding_size: int, style_image_size: int,
                 vgg: Dict[str, torch.Tensor]):
        super().__init__()
        self.summary_layers = list(summary_layers)
        self.style_image_size = style_image_size
        self.deepest = max(self.summary_layers)
        self.summary_size = sum(2 * _VGG_CHANNELS[layer] for layer in self.summary_layers)
        self.embedding_size = embedding_size
        self.bottleneck = nn.Linear(self.summary_size, embedding_size)
        self.to_norms = nn.Linear(embedding_size, NORM_PARAMETER_COUNT)
        for layer in range(self.deepest + 1):
            name = f"features.{_VGG_FEATURE_INDEX[layer]}"
            self.register_buffer(f"vgg_weight_{layer}", vgg[name + ".weight"].float(),
                                 persistent=False)
            self.register_buffer(f"vgg_bias_{layer}", vgg[name + ".bias"].float(),
                                 persistent=False)
        # As stylefleet: mean and 1 / std rounded to float32 from float64.
        self.input_scale = float(vgg["input_scale"])
        self.register_buffer("vgg_mean", vgg["mean"].double().float().view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("vgg_inv_std", (1.0 / vgg["std"].double()).float().view(1, 3, 1, 1),
                             persistent=False)

    def summary(self, images: torch.Tensor) -> torch.Tensor:
        """B x 3 x H x W RGB 0..255 (as prepared: resize_centre_crop) -> [B, S]."""
        x = (images.float() * (self.input_scale / 255.0) - self.vgg_mean) * self.vgg_inv_std
        parts = []
        for layer in range(self.deepest + 1):
            x = F.relu(F.conv2d(x, getattr(self, f"vgg_weight_{layer}"),
                                getattr(self, f"vgg_bias_{layer}"), padding=1))
            if layer in self.summary_layers:
                f = x.flatten(2)
                mean = f.mean(2)
                variance = (f - mean.unsqueeze(2)).pow(2).mean(2)
                parts.append((layer, mean, (variance + 1e-5).sqrt()))
            if layer in _VGG_POOL_AFTER and layer < self.deepest:
                x = F.max_pool2d(x, 2, 2)
        ordered = sorted(parts, key=lambda part: self.summary_layers.index(part[0]))
        return torch.cat([t for _, mean, std in ordered for t in (mean, std)], 1)

    def embed(self, summary: torch.Tensor) -> torch.Tensor:
        """[B, S] summaries -> [B, E] embeddings."""
        centred = summary - summary.mean(1, keepdim=True)
        standard = centred / (centred.pow(2).mean(1, keepdim=True) + 1e-5).sqrt()
        return self.bottleneck(standard) / float(self.summary_size)

    def norms_of(self, embedding: torch.Tensor) -> torch.Tensor:
        """[B, E] embeddings -> [B, 2560] norms."""
        return self.to_norms(embedding / float(self.embedding_size))

    def embed_images(self, images: List[torch.Tensor]) -> torch.Tensor:
        """Images (3 x H x W, RGB 0..255, each side >= 32) -> [n, E]: each resized as
        stylefleet resizes style images (resize_centre_crop), summarized and embedded."""
        prepared = [resize_centre_crop(image, self.style_image_size) for image in images]
        return self.embed(self.summary(torch.stack(prepared).to(self.vgg_mean.device)))


class Model(NamedTuple):
    """What load_model returns: the network (eval mode), its style names (a conditional
    network's in row order; a per-style one's own name if the file has it, else []; an
    arbitrary-style one's [], the styles it trained on being in metadata["styles"]), and
    the file's metadata (`stylefleet.` keys without the prefix: strings and integers)."""
    net: TransformerNet
    styles: List[str]
    metadata: Dict[str, Union[str, int]]


def _is_norm_parameter(key: str) -> bool:
    """in1..in5.{weight,bias} and resK.in1/in2.{weight,bias}."""
    parts = key.split(".")
    return parts[-1] in ("weight", "bias") and len(parts) >= 2 and parts[-2].startswith("in")


def _read_metadata(state: dict, path: str) -> Dict[str, Union[str, int]]:
    metadata = {}
    for key, value in state.items():
        if not key.startswith(METADATA_PREFIX):
            continue
        name = key[len(METADATA_PREFIX):]
        if name in _STRING_METADATA:
            if value.dim() != 1 or value.dtype != torch.uint8:
                raise ValueError(f"{path}: '{key}' must be a 1-D uint8 tensor (UTF-8 text), "
                                 f"got {value.dtype} of shape {list(value.shape)}")
            try:
                metadata[name] = bytes(value.tolist()).decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}: '{key}' is not UTF-8 text ({e})") from None
        elif value.dim() == 0 and not value.is_floating_point() and value.dtype != torch.bool:
            metadata[name] = int(value.item())
    return metadata


def _style_names(metadata: dict, state: dict, path: str) -> List[str]:
    """A conditional file's names, checked against every instance norm's row count."""
    if "styles" not in metadata:
        raise ValueError(f"{path}: a conditional network file must name its styles "
                         "('stylefleet.styles', the names joined by newlines)")
    names = metadata["styles"].split("\n")
    if any(not name for name in names):
        raise ValueError(f"{path}: 'stylefleet.styles' holds an empty style name: {names}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{path}: 'stylefleet.styles' names a style twice: {repeated}")
    for key, value in state.items():
        if key.startswith(METADATA_PREFIX) or not _is_norm_parameter(key):
            continue
        if value.dim() != 2 or value.shape[0] != len(names):
            rows = f"{value.shape[0]} rows" if value.dim() == 2 else f"shape {list(value.shape)}"
            raise ValueError(f"{path}: '{key}' has {rows}, but 'stylefleet.styles' names "
                             f"{len(names)} styles ({', '.join(names)}): expected "
                             f"[{len(names)}, C]")
    return names


def _arbitrary_predictor(metadata: dict, state: dict, path: str) -> StylePredictor:
    """The predictor an arbitrary-style export describes, its loss-network layers checked
    (the trainable part is loaded with the other parameters)."""
    layers = state.get(METADATA_PREFIX + "predictor_layers")
    if (layers is None or layers.dim() != 1 or layers.dtype != torch.int64
            or not 1 <= layers.numel() <= 13):
        raise ValueError(f"{path}: an arbitrary-style network's 'stylefleet.predictor_layers' "
                         "is missing or not a list of 1 to 13 loss-network layer indices")
    summary_layers = layers.tolist()
    if any(not 0 <= layer <= 12 for layer in summary_layers) or len(set(summary_layers)) != len(
            summary_layers):
        raise ValueError(f"{path}: 'stylefleet.predictor_layers' {summary_layers} must hold "
                         "loss-network layer indices 0 to 12, each once")
    size = metadata.get("style_image_size", 0)
    if not MIN_TRAINING_STYLE_SIZE <= size <= MAX_TRAINING_STYLE_SIZE:
        raise ValueError(f"{path}: 'stylefleet.style_image_size' is missing or not from "
                         f"{MIN_TRAINING_STYLE_SIZE} to {MAX_TRAINING_STYLE_SIZE}")
    bottleneck = state.get("predictor.bottleneck.weight")
    if bottleneck is None or bottleneck.dim() != 2:
        raise ValueError(f"{path}: model file lacks parameter(s) predictor.bottleneck.weight")
    # Its rows size the predictor before the shapes are compared: bounded first, as
    # stylefleet bounds it (a few bytes on disk can claim millions of rows).
    if not 1 <= bottleneck.shape[0] <= MAX_EMBEDDING_SIZE:
        raise ValueError(f"{path}: 'predictor.bottleneck.weight' claims {bottleneck.shape[0]} "
                         f"embedding numbers; a predictor has 1 to {MAX_EMBEDDING_SIZE}")
    vgg = {key[len(VGG_PREFIX):]: value for key, value in state.items()
           if key.startswith(VGG_PREFIX)}
    needed = [f"features.{_VGG_FEATURE_INDEX[layer]}.{part}"
              for layer in range(max(summary_layers) + 1) for part in ("weight", "bias")]
    missing = [key for key in needed + ["input_scale", "mean", "std"] if key not in vgg]
    if missing:
        raise ValueError(f"{path}: an arbitrary-style network needs its loss network's layers "
                         f"(write the file with `stylefleet export`); it lacks "
                         f"{', '.join(VGG_PREFIX + key for key in missing)}")
    for layer in range(max(summary_layers) + 1):
        cin = 3 if layer == 0 else _VGG_CHANNELS[layer - 1]
        name = f"features.{_VGG_FEATURE_INDEX[layer]}"
        for part, shape in (("weight", [_VGG_CHANNELS[layer], cin, 3, 3]),
                            ("bias", [_VGG_CHANNELS[layer]])):
            value = vgg[f"{name}.{part}"]
            if not value.is_floating_point() or list(value.shape) != shape:
                raise ValueError(f"{path}: '{VGG_PREFIX}{name}.{part}' is {value.dtype} of "
                                 f"shape {list(value.shape)}, expected float of shape {shape}")
            if not torch.isfinite(value.float()).all():  # as it runs: float32
                raise ValueError(f"{path}: '{VGG_PREFIX}{name}.{part}' holds NaN or infinite "
                                 "values")
    for key, count in (("input_scale", 1), ("mean", 3), ("std", 3)):
        value = vgg[key]
        if (not value.is_floating_point() or value.numel() != count
                or not torch.isfinite(value.float()).all()):
            raise ValueError(f"{path}: '{VGG_PREFIX}{key}' must hold {count} finite number(s)")
    # Used as float32, as stylefleet uses them: input_scale / 255 and 1 / std too.
    scale, std = vgg["input_scale"].double(), vgg["std"].double()
    if (not (scale > 0).all() or not (std > 0).all()
            or not torch.isfinite((scale / 255.0).float()).all()
            or not torch.isfinite((1.0 / std).float()).all()):
        raise ValueError(f"{path}: '{VGG_PREFIX}input_scale' and '{VGG_PREFIX}std' must be "
                         "finite numbers > 0 whose inverses are finite in float32")
    return StylePredictor(summary_layers, bottleneck.shape[0], size, vgg)


def _load_parameters(net: TransformerNet, state: dict, path: str) -> None:
    """Strict: every parameter present with its shape, nothing else but metadata."""
    given = {k: v for k, v in state.items()
             if not k.startswith(METADATA_PREFIX) and not k.endswith(_STALE_STAT_SUFFIXES)}
    expected = net.state_dict()
    missing = [k for k in expected if k not in given]
    if missing:
        raise ValueError(f"{path}: model file lacks parameter(s) {', '.join(missing)}")
    unexpected = [k for k in given if k not in expected]
    if unexpected:
        raise ValueError(f"{path}: unexpected key(s) {', '.join(unexpected)} (not "
                         "TransformerNet parameters)")
    for key, value in given.items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ValueError(f"{path}: parameter '{key}' is not a floating-point tensor")
        if value.shape != expected[key].shape:
            hint = ""
            if _is_norm_parameter(key) and value.dim() != expected[key].dim():
                hint = (" (2-D instance norm parameters belong to a conditional network, "
                        "which needs stylefleet.network = 'conditional')"
                        if value.dim() == 2 else "")
            raise ValueError(f"{path}: parameter '{key}' has shape {list(value.shape)}, "
                             f"expected {list(expected[key].shape)}{hint}")
        if not torch.isfinite(value.float()).all():  # as it runs: float32
            raise ValueError(f"{path}: parameter '{key}' holds NaN or infinite values (as "
                             "float32)")
    net.load_state_dict({k: v.float() for k, v in given.items()}, strict=True)


def read_tensor_file(path: str):
    """What torch.save or LibTorch's torch::pickle_save wrote at `path`, on the CPU.
    Raises ValueError when PyTorch cannot read it or it is not a regular file."""
    # A FIFO without a writer would block the open for ever; a device never ends.
    if os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(f"{path}: not a regular file (a FIFO, a device or a socket); give "
                         "a model file")
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    try:
        if safe_globals is not None:
            # PyTorch >= 2.5: load tensors only, no pickled code. LibTorch's pickle_save
            # (what stylefleet writes with) tags its dict through restore_type_tag, which
            # only returns its argument: safe to allow.
            from torch.jit._pickle import restore_type_tag
            with safe_globals([restore_type_tag]):
                return torch.load(path, map_location="cpu", weights_only=True)
        # Older PyTorch cannot be told that: a full unpickling, as torch.load always did.
        if "weights_only" in inspect.signature(torch.load).parameters:
            return torch.load(path, map_location="cpu", weights_only=False)
        return torch.load(path, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise ValueError(f"{path}: not a model file (PyTorch cannot read it: {e})") from None


def _network_hint(folder: str) -> str:
    # A conditional job's style folders hold metrics and previews, no model: the
    # network is their sibling `conditional` (the job's default layout).
    folder = os.path.normpath(folder)
    network = os.path.join(os.path.dirname(folder), "conditional")
    if os.path.basename(folder) == "conditional" or not os.path.isfile(
            os.path.join(network, "model.pt")):
        return ""
    return (f"; if it is a style of the conditional network in {network}, give that "
            f"folder and the style: {network} --style {os.path.basename(folder)}")


def load_model(path: str, device: Union[str, torch.device] = "cpu") -> Model:
    """Loads a stylefleet model file (per-style or conditional), a stylefleet checkpoint,
    a style output folder (its model.pt), a PyTorch-example state dict, or an
    arbitrary-style network's `stylefleet export` (which carries its loss network's layers).

    Raises ValueError naming the file when it is not a dict of tensors, lacks a parameter
    or has unexpected ones, has parameters of the wrong shape or non-finite values, has a
    head other than linear, an unknown network kind, or (conditional) style names that
    are missing, empty, repeated or not as many as the instance norms' rows; (arbitrary)
    predictor layers or loss-network layers that are missing or malformed.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        folder, path = path, os.path.join(path, "model.pt")
        if not os.path.isfile(path):
            raise ValueError(f"{folder}: folder holds no model.pt{_network_hint(folder)}")
    state = read_tensor_file(path)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a model file (expected a dict of tensors, got "
                         f"{type(state).__name__})")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: not a model file (entry {key!r} is not a named tensor)")
    metadata = _read_metadata(state, path)
    head = metadata.get("head", LINEAR_HEAD)
    if head != LINEAR_HEAD:
        raise ValueError(f"{path}: network head '{head}' is not supported (only "
                         f"'{LINEAR_HEAD}')")
    network = metadata.get("network")
    if network is None:
        style = metadata.get("style", "")
        names = [style] if style else []
        net = TransformerNet()
    elif network == CONDITIONAL:
        names = _style_names(metadata, state, path)
        net = TransformerNet(len(names))
    elif network == ARBITRARY:
        names = []
        net = TransformerNet(predictor=_arbitrary_predictor(metadata, state, path))
    else:
        raise ValueError(f"{path}: unknown network kind '{network}' in 'stylefleet.network' "
                         f"(known: '{CONDITIONAL}', '{ARBITRARY}'; absent for a per-style "
                         "network)")
    _load_parameters(net, state, path)
    net.to(device).eval()
    return Model(net, names, metadata)


def parse_blend(text: str) -> Dict[str, float]:
    """'a=0.7,b=0.3' -> {'a': 0.7, 'b': 0.3}. Raises ValueError on malformed text."""
    blend = {}
    for item in text.split(","):
        name, sep, weight = item.strip().rpartition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"blend '{text}': expected NAME=WEIGHT,NAME=WEIGHT, got '{item}'")
        if name in blend:
            raise ValueError(f"blend '{text}': style '{name}' appears twice")
        try:
            blend[name] = float(weight)
        except ValueError:
            raise ValueError(f"blend '{text}': weight '{weight}' of '{name}' is not a "
                             "number") from None
    return blend


def _unknown_style(model: Model, name: str) -> ValueError:
    available = ", ".join(model.styles) if model.styles else "none named in the file"
    return ValueError(f"unknown style '{name}'; available: {available}")


def style_argument(model: Model, style: Optional[str] = None,
                   blend: Union[Dict[str, float], str, None] = None):
    """The `style` argument of model.net.forward for a style name or a blend by name.

    A conditional model needs exactly one of `style` and `blend`; a per-style model takes
    neither, or `style` equal to its own name. Blend weights must be finite, >= 0 and add
    up to 1 within 1e-6. Raises ValueError otherwise (unknown names list the available).
    """
    if style is not None and blend is not None:
        raise ValueError("give either a style or a blend, not both")
    if not model.net.conditional:
        if blend is not None:
            raise ValueError("a blend needs a conditional model; this one is per-style "
                             f"({', '.join(model.styles) or 'unnamed'})")
        if style is not None and style not in model.styles:
            raise _unknown_style(model, style)
        return None
    if style is None and blend is None:
        raise ValueError("a conditional model needs a style or a blend; available: "
                         f"{', '.join(model.styles)}")
    if style is not None:
        if style not in model.styles:
            raise _unknown_style(model, style)
        return model.styles.index(style)
    if isinstance(blend, str):
        blend = parse_blend(blend)
    if not blend:
        raise ValueError("a blend needs at least one style")
    weights = [0.0] * len(model.styles)
    for name, weight in blend.items():
        if name not in model.styles:
            raise _unknown_style(model, name)
        weight = float(weight)
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"blend weight of '{name}' must be >= 0, got {weight}")
        weights[model.styles.index(name)] = weight
    total = math.fsum(weights)
    if abs(total - 1.0) > BLEND_SUM_TOLERANCE:
        raise ValueError(f"blend weights must add up to 1, got {total:.9g}")
    return torch.tensor(weights, dtype=torch.float32)


def pad_for_network(image: torch.Tensor) -> torch.Tensor:
    """Pads B x 3 x H x W at the bottom and right to a multiple of 4 per side and at least
    8 (the quarter-resolution layers reflect-pad by one pixel, which needs two there):
    reflection where each pad is smaller than its side, replication for tiny images, as
    stylefleet's own stylize does. The caller crops the output back to H x W."""
    h, w = image.shape[2], image.shape[3]
    pad_h = max(8, (h + 3) // 4 * 4) - h
    pad_w = max(8, (w + 3) // 4 * 4) - w
    if pad_h == 0 and pad_w == 0:
        return image
    mode = "reflect" if h > pad_h and w > pad_w else "replicate"
    return F.pad(image, [0, pad_w, 0, pad_h], mode=mode)


def _triangle_taps(in_size: int, out_size: int):
    """Per output pixel of one axis: (first source index, float32 weights), stylefleet's
    antialiased bilinear (PIL's BILINEAR): a triangle of half-width max(scale, 1) source
    pixels around the pixel's centre, taps outside the image dropped, weights normalized
    in float64 and then rounded to float32."""
    scale = in_size / out_size
    widen = max(scale, 1.0)
    taps = []
    for i in range(out_size):
        centre = (i + 0.5) * scale
        first = max(0, int(centre - widen + 0.5))
        end = min(in_size, int(centre + widen + 0.5))
        weights = [max(0.0, 1.0 - abs((j + 0.5 - centre) / widen)) for j in range(first, end)]
        total = sum(weights)  # in order, as stylefleet adds them
        taps.append((first, [w / total if total > 0 else 0.0 for w in weights]))
    return taps


def _resample_axis(pixels: torch.Tensor, taps, axis: int) -> torch.Tensor:
    """float32 sums over `axis` of `pixels`, tap by tap in order (stylefleet's order of
    additions: the same float32 results)."""
    count = max(len(weights) for _, weights in taps)
    out_shape = list(pixels.shape)
    out_shape[axis] = len(taps)
    acc = torch.zeros(out_shape, dtype=torch.float32)
    for k in range(count):
        index = torch.tensor([first + min(k, len(w) - 1) for first, w in taps])
        weight = torch.tensor([w[k] if k < len(w) else 0.0 for _, w in taps],
                              dtype=torch.float64).float()
        shape = [1] * pixels.dim()
        shape[axis] = len(taps)
        acc = acc + weight.view(shape) * pixels.index_select(axis, index).float()
    return acc


def resize_centre_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """The centre square of `image` (3 x H x W, RGB 0..255; rounded to whole levels first)
    resized to size x size as stylefleet resizes style images: antialiased bilinear, rows
    then columns in float32, rounded half up to whole levels once at the end. Float32
    3 x size x size."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a 3 x H x W image, got shape {list(image.shape)}")
    levels = to_levels(image.cpu()).to(torch.uint8)
    h, w = levels.shape[1], levels.shape[2]
    side = min(h, w)
    square = levels[:, (h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
    if side == size:
        return square.float()
    rows = _resample_axis(square, _triangle_taps(side, size), 2)
    both = _resample_axis(rows, _triangle_taps(side, size), 1)
    return to_levels(both).float()


def _arbitrary_blend(blend, count: int) -> torch.Tensor:
    """Weights of `count` style images: `blend` (a list or "0.7,0.3"), else equal."""
    if blend is None:
        return torch.full([count], 1.0 / count, dtype=torch.float32)
    items = blend.split(",") if isinstance(blend, str) else list(blend)
    weights = []
    for item in items:
        try:
            weight = float(item)
        except ValueError:
            raise ValueError(f"blend weight '{item}' is not a number (an arbitrary-style "
                             "model's blend is one weight per style image: 0.7,0.3)") from None
        if not math.isfinite(weight) or not 0 <= weight <= 1:
            raise ValueError(f"blend weight {item} is not a number from 0 to 1")
        weights.append(weight)
    if len(weights) != count or abs(math.fsum(weights) - 1.0) > BLEND_SUM_TOLERANCE:
        raise ValueError(f"give {count} blend weight(s), one per style image, that add up to 1")
    return torch.tensor(weights, dtype=torch.float32)


def arbitrary_norms(model: Model, style_images: List[torch.Tensor], blend=None,
                    strength: float = 1.0, photos: Optional[torch.Tensor] = None) -> torch.Tensor:
    """An arbitrary-style model's norms, as `stylefleet stylize --style-image ...` makes
    them: the style images' embeddings (3 x H x W RGB 0..255, each side >= 32) weighted by
    `blend` (one weight per image, >= 0, sum 1; default equal), moved toward each photo's
    own embedding by `strength` in 0..1 (below 1 it needs `photos`, B x 3 x H x W). [2560]
    at strength 1, else [B, 2560]."""
    if not model.net.arbitrary:
        raise ValueError("style images need an arbitrary-style model")
    if not style_images:
        raise ValueError("an arbitrary-style model needs at least one style image")
    for image in style_images:
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a 3 x H x W style image, got shape {list(image.shape)}")
        if min(image.shape[1], image.shape[2]) < MIN_STYLE_IMAGE_SIDE:
            raise ValueError(f"a style image of {image.shape[2]}x{image.shape[1]} pixels; the "
                             f"predictor needs at least {MIN_STYLE_IMAGE_SIDE} on each side")
    strength = float(strength)
    if not math.isfinite(strength) or not 0 <= strength <= 1:
        raise ValueError(f"strength must be a number from 0 to 1, got {strength}")
    weights = _arbitrary_blend(blend, len(style_images))
    predictor = model.net.predictor
    with torch.no_grad():
        embedding = weights.to(predictor.vgg_mean.device).unsqueeze(0) @ predictor.embed_images(
            style_images)
        if strength == 1.0:
            return predictor.norms_of(embedding)[0]
        if photos is None:
            raise ValueError("a strength below 1 needs the photos (each its own embedding)")
        own = predictor.embed_images(list(photos))
        return predictor.norms_of(strength * embedding + (1.0 - strength) * own)


def stylize(model: Model, image: torch.Tensor, style: Optional[str] = None,
            blend: Union[Dict[str, float], str, List[float], None] = None,
            style_images: Optional[List[torch.Tensor]] = None,
            strength: float = 1.0) -> torch.Tensor:
    """`model`'s stylization of `image` (3 x H x W or B x 3 x H x W, RGB 0..255, any
    H, W >= 1): padded, run without gradients, cropped back and clamped to 0..255. Same
    shape and device as `image`. `style` and `blend` as in style_argument; for an
    arbitrary-style model `style_images`, `blend` (one weight per image) and `strength`
    as in arbitrary_norms."""
    if image.dim() not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(f"expected a 3 x H x W or B x 3 x H x W image, got shape "
                         f"{list(image.shape)}")
    if image.shape[-1] < 1 or image.shape[-2] < 1:
        raise ValueError(f"empty image of shape {list(image.shape)}")
    batch = image if image.dim() == 4 else image.unsqueeze(0)
    if model.net.arbitrary:
        if style is not None:
            raise ValueError("an arbitrary-style model has no named styles; give style images")
        selector = arbitrary_norms(model, list(style_images) if style_images is not None
                                   else [], blend, strength, batch)
    elif style_images:
        raise ValueError("style images need an arbitrary-style model")
    else:
        selector = style_argument(model, style, blend)
    parameter = next(model.net.parameters())
    h, w = batch.shape[2], batch.shape[3]
    with torch.no_grad():
        x = pad_for_network(batch.to(parameter.device, parameter.dtype))
        out = model.net(x, selector)[:, :, :h, :w].clamp(0, 255).to(image.device)
    return out if image.dim() == 4 else out[0]


def to_levels(image: torch.Tensor) -> torch.Tensor:
    """Whole 0..255 levels as stylefleet writes an image (int64, same shape): clamped, then
    rounded half up, as C++'s lround on values from 0 (torch.round takes halves to even: 2.5
    gave 2 where stylefleet writes 3). In float64, where adding 0.5 to a float32 is exact."""
    return (image.clamp(0, 255).double() + 0.5).floor().to(torch.int64)


def luma(image: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (0.299 R + 0.587 G + 0.114 B) of ... x 3 x H x W RGB, as ... x H x W."""
    return 0.299 * image[..., 0, :, :] + 0.587 * image[..., 1, :, :] + 0.114 * image[..., 2, :, :]


def preserve_colour(stylized: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """The stylized image's luminance with the photo's colours (luminance-only transfer), the
    pixels `stylefleet stylize --preserve-colour` writes: both images rounded to 0..255
    levels, then photo + d in every channel, d = Y(stylized) - Y(photo) rounded to a whole
    level (half away from zero; the lumas in integer thousandths), which keeps the photo's
    YCbCr (and YIQ) chroma exactly except where a channel is clamped to 0..255. Same shape
    and dtype as `photo`."""
    if stylized.shape != photo.shape:
        raise ValueError(f"the stylized image has shape {list(stylized.shape)}, the photo "
                         f"{list(photo.shape)}")

    def luma_milli(x):
        return 299 * x[..., 0, :, :] + 587 * x[..., 1, :, :] + 114 * x[..., 2, :, :]

    styled = to_levels(stylized)
    original = to_levels(photo)
    milli = luma_milli(styled) - luma_milli(original)
    change = torch.sign(milli) * ((milli.abs() + 500) // 1000)
    return (original + change.unsqueeze(-3)).clamp(0, 255).to(photo.dtype)


def _read_image(path: str) -> torch.Tensor:
    """RGB 0..255 as stylefleet decodes it: a JPEG turned upright by its EXIF orientation
    (stylefleet reads the orientation of JPEGs only; Pillow would also turn a PNG or WebP
    carrying an EXIF block), and a 16-bit image's high byte (PIL's own conversion of 16-bit
    grey clips it to white)."""
    from PIL import Image, ImageOps
    with Image.open(path) as img:
        upright = ImageOps.exif_transpose(img) if img.format == "JPEG" else img
        if upright.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
            upright = upright.convert("I").point(lambda v: v * (1 / 256)).convert("L")
        rgb = upright.convert("RGB")
        w, h = rgb.size
        data = bytearray(rgb.tobytes())
    pixels = (torch.frombuffer(data, dtype=torch.uint8) if hasattr(torch, "frombuffer")
              else torch.tensor(list(data), dtype=torch.uint8))
    return pixels.view(h, w, 3).permute(2, 0, 1).float()


def _write_image(image: torch.Tensor, path: str) -> None:
    """3 x H x W in 0..255, as stylefleet writes it (to_levels)."""
    from PIL import Image
    pixels = to_levels(image).to(torch.uint8).permute(1, 2, 0).contiguous()
    h, w = pixels.shape[0], pixels.shape[1]
    Image.frombytes("RGB", (w, h), bytes(pixels.view(-1).tolist())).save(path)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Stylize an image with a stylefleet model (per-style, conditional "
                    "multi-style, or an arbitrary-style network's export) in PyTorch. The "
                    "output is clamped to 0..255.",
        epilog="examples: %(prog)s model.pt photo.jpg out.png --style mosaic\n"
               "          %(prog)s model.pt photo.jpg out.png --blend mosaic=0.7,candy=0.3\n"
               "          %(prog)s export.pt photo.jpg out.png --style-image painting.jpg\n"
               "          %(prog)s model.pt --list",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model file (or a style output folder with model.pt)")
    parser.add_argument("input", nargs="?", help="input image (any format Pillow reads)")
    parser.add_argument("output", nargs="?", help="output image (format from its extension)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--style", metavar="NAME",
                        help="the style to apply (required for a conditional model unless "
                             "--blend is given)")
    choice.add_argument("--blend", metavar="NAME=W,NAME=W",
                        help="a blend of a conditional model's styles; weights >= 0, sum 1 "
                             "(an arbitrary-style model: W,W, one per --style-image)")
    parser.add_argument("--style-image", action="append", metavar="PATH", default=[],
                        dest="style_images",
                        help="an arbitrary-style model's style: any image of at least 32 "
                             "pixels a side (give it again to blend several)")
    parser.add_argument("--strength", type=float, default=1.0, metavar="S",
                        help="an arbitrary-style model's style strength, 0 (the photo's own "
                             "embedding) to 1 (default)")
    parser.add_argument("--preserve-colour", "--preserve-color", action="store_true",
                        help="keep the photo's colours: only the stylized luminance is taken")
    parser.add_argument("--list", action="store_true",
                        help="print the model's style names, one a line, and exit")
    args = parser.parse_args(argv)
    try:
        model = load_model(args.model)
        if args.list:
            if model.net.arbitrary:
                print("an arbitrary-style model: it takes any style image (--style-image); "
                      f"trained on: {model.metadata.get('styles', '').replace(chr(10), ', ')}",
                      file=sys.stderr)
            for name in model.styles:
                print(name)
            return 0
        if args.input is None or args.output is None:
            parser.error("INPUT_IMAGE and OUTPUT_IMAGE are required unless --list is given")
        style_images = None
        if model.net.arbitrary:
            if not args.style_images:
                raise ValueError(f"{args.model} is an arbitrary-style model: give the style as "
                                 "an image, --style-image PATH")
            style_images = [_read_image(path) for path in args.style_images]
        else:
            if args.style_images or args.strength != 1.0:
                raise ValueError("--style-image and --strength need an arbitrary-style model")
            # Checked before reading the image, so a wrong name fails fast.
            style_argument(model, args.style, args.blend)
        image = _read_image(args.input)
        out = stylize(model, image, args.style, args.blend, style_images, args.strength)
        if args.preserve_colour:
            out = preserve_colour(out, image)
        _write_image(out, args.output)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
