#!/usr/bin/python3
"""The PyTorch reference for `stylefleet bench`: the same transformer (the
PyTorch fast-neural-style example's architecture), the same random VGG-16 loss
network convention, the same seed loss formulas and Adam, on synthetic
in-memory images. Prints one JSON document.

Run with Debian's PyTorch: /usr/bin/python3 tests/bench/reference_train.py --help
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The transformer and the VGG-16 constants are those of the test reference
# (tests/reference/reference.py), written independently of the C++ code.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from reference import POOL_AFTER, VGG_CHANNELS, VGG_NAMES, TransformerNet  # noqa: E402

MEAN_PIXEL = [123.68, 116.78, 103.94]


class Vgg(nn.Module):
    """Conv part of VGG-16, random (Kaiming fan-in), input 0..255 minus the mean pixel."""

    def __init__(self, deepest):
        super().__init__()
        self.convs = nn.ModuleList()
        cin = 3
        for cout in VGG_CHANNELS[: deepest + 1]:
            conv = nn.Conv2d(cin, cout, 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            self.convs.append(conv)
            cin = cout
        self.register_buffer("mean", torch.tensor(MEAN_PIXEL).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x, layers):
        out = {}
        deepest = max(layers)
        x = x - self.mean
        for i, conv in enumerate(self.convs[: deepest + 1]):
            x = F.relu(conv(x))
            if i in layers:
                out[i] = x
            if i in POOL_AFTER and i < deepest:
                x = F.max_pool2d(x, 2)
        return out


def gram(f):
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--bf16", action="store_true", help="CPU autocast to bfloat16")
    p.add_argument("--content-layers", default="conv3_3")
    p.add_argument("--style-layers", default="conv1_2,conv2_2,conv3_3,conv4_3")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--tf32", action="store_true", help="allow TF32 in fp32 convolutions and matmuls (CUDA)")
    args = p.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.allow_tf32 = args.tf32

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    content_layers = [VGG_NAMES.index(n) for n in args.content_layers.split(",")]
    style_layers = [VGG_NAMES.index(n) for n in args.style_layers.split(",")]
    all_layers = content_layers + style_layers
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    net = TransformerNet().to(device, memory_format=fmt)
    vgg = Vgg(max(all_layers)).to(device, memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    size = args.image_size
    style = torch.rand(1, 3, size, size, device=device) * 255
    with torch.no_grad():
        feats = vgg(style.contiguous(memory_format=fmt), style_layers)
        grams = [gram(feats[l]) for l in style_layers]
    images = torch.rand(args.batch, 3, size, size, device=device) * 255

    times = []
    losses = []
    for step in range(args.warmup + args.steps):
        sync()
        start = time.perf_counter()
        x = images.contiguous(memory_format=fmt)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            with torch.no_grad():
                target = vgg(x, content_layers)
            y = net(x)
            gen = vgg(y, all_layers)
        gen = {k: v.float() for k, v in gen.items()}
        content = sum(((gen[l] - target[l].float()) ** 2).sum() / gen[l].numel()
                      for l in content_layers)
        style_loss = sum(((gram(gen[l]) - g) ** 2).sum() / gen[l].numel()
                         for l, g in zip(style_layers, grams))
        total = content + 100.0 * style_loss
        total.backward()
        opt.step()
        losses.append(total.item())
        sync()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(json.dumps({
        "implementation": "pytorch-reference",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "image_size": size, "batch": args.batch, "threads": args.threads,
        "channels_last": args.channels_last, "bf16": args.bf16, "device": str(device),
        "tf32": args.tf32,
        "step_seconds_median": median,
        "images_per_second": args.batch / median,
        "step_seconds": times,
        "total_loss_first": losses[0],
    }))


if __name__ == "__main__":
    main()
