#!/usr/bin/python3
"""Independent PyTorch reference for stylefleet's C++ tests (Debian's python3-torch).

  reference.py losses OUTDIR   writes random VGG-16 weights, a random transformer, input
                               images and the seed's loss terms computed here, for the C++
                               side to reproduce (tests/unit/loss_test.cc)
  reference.py file-losses OUTDIR
                               writes random VGG-16 weights, a random transformer and two
                               256x256 PNGs (content.png, style.png), and expected.json: the
                               seed's loss terms on the PNGs' own pixels (read with PIL, not
                               resized), for `stylefleet losses --image-size 256` to reproduce
  reference.py export MODEL DATA
                               loads a model exported by `stylefleet export` into this
                               file's TransformerNet, runs it on DATA['input'] and checks
                               that the result equals DATA['output'] (the C++ inference)

The formulas are written from the seed's definitions, independently of the C++ code.
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvLayer(nn.Module):
    def __init__(self, cin, cout, kernel, stride, upsample=1):
        super().__init__()
        self.upsample = upsample
        self.pad = kernel // 2
        self.conv2d = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x):
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv2d(F.pad(x, [self.pad] * 4, mode="reflect"))


class ResidualBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = ConvLayer(c, c, 3, 1)
        self.in1 = nn.InstanceNorm2d(c, affine=True)
        self.conv2 = ConvLayer(c, c, 3, 1)
        self.in2 = nn.InstanceNorm2d(c, affine=True)

    def forward(self, x):
        return self.in2(self.conv2(F.relu(self.in1(self.conv1(x))))) + x


class TransformerNet(nn.Module):
    """Johnson et al.'s network with the PyTorch example's parameter names, linear head."""

    def __init__(self):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(3, 32, 9, 1), nn.InstanceNorm2d(32, affine=True)
        self.conv2, self.in2 = ConvLayer(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.conv3, self.in3 = ConvLayer(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True)
        self.res1, self.res2, self.res3 = ResidualBlock(128), ResidualBlock(128), ResidualBlock(128)
        self.res4, self.res5 = ResidualBlock(128), ResidualBlock(128)
        self.deconv1, self.in4 = ConvLayer(128, 64, 3, 1, 2), nn.InstanceNorm2d(64, affine=True)
        self.deconv2, self.in5 = ConvLayer(64, 32, 3, 1, 2), nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, 9, 1)

    def forward(self, x):
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


# torchvision vgg16().features: conv indices and the layers after which a 2x2 max-pool follows.
VGG_CONV_INDEX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
VGG_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
VGG_NAMES = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
             "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]
POOL_AFTER = {1, 3, 6, 9}


def vgg_features(weights, image, layers, input_scale, mean, std):
    x = (image / 255.0 * input_scale - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    out = {}
    for i in range(max(layers) + 1):
        idx = VGG_CONV_INDEX[i]
        x = F.relu(F.conv2d(x, weights[f"features.{idx}.weight"], weights[f"features.{idx}.bias"], padding=1))
        if i in layers:
            out[i] = x
        if i in POOL_AFTER:
            x = F.max_pool2d(x, 2)
    return out


def gram(f):
    b, c, h, w = f.shape
    m = f.reshape(b, c, h * w)
    return m @ m.transpose(1, 2) / (h * w * c)


def write_random_networks(outdir):
    """Random VGG-16 weights (TF-slim input convention) and a random transformer, saved."""
    torch.manual_seed(1234)
    weights = {}
    cin = 3
    for i, cout in enumerate(VGG_CHANNELS):
        idx = VGG_CONV_INDEX[i]
        weights[f"features.{idx}.weight"] = torch.randn(cout, cin, 3, 3) * (2.0 / (cin * 9)) ** 0.5
        weights[f"features.{idx}.bias"] = torch.randn(cout) * 0.01
        cin = cout
    # A classifier key, as in a whole-model state dict: must be ignored.
    weights["classifier.0.bias"] = torch.zeros(4)
    weights["stylefleet.input_scale"] = torch.tensor(255.0)
    weights["stylefleet.mean"] = torch.tensor([123.68, 116.78, 103.94])
    weights["stylefleet.std"] = torch.tensor([1.0, 1.0, 1.0])
    torch.save(dict(weights), f"{outdir}/vgg.pt")
    net = TransformerNet()
    torch.save(dict(net.state_dict()), f"{outdir}/transformer.pt")
    return weights, net


def seed_losses(weights, net, content, style, w_content, w_style, w_tv,
                content_layers=(6,), style_layers=(1, 3, 6, 9)):
    """The seed's terms; default layers conv3_3 (content), conv1_2 conv2_2 conv3_3 conv4_3."""
    content_layers, style_layers = list(content_layers), list(style_layers)
    norm = (weights["stylefleet.input_scale"], weights["stylefleet.mean"], weights["stylefleet.std"])
    with torch.no_grad():
        generated = net(content)
        gen = vgg_features(weights, generated, content_layers + style_layers, *norm)
        tgt = vgg_features(weights, content, content_layers, *norm)
        sty = vgg_features(weights, style, style_layers, *norm)
        content_loss = sum(((gen[l] - tgt[l]) ** 2).sum() / gen[l].numel() for l in content_layers)
        layer_losses = [((gram(gen[l]) - gram(sty[l])) ** 2).sum() / gen[l].numel() for l in style_layers]
        style_loss = sum(layer_losses)
        dy = generated[:, :, :-1, :] - generated[:, :, 1:, :]
        dx = generated[:, :, :, :-1] - generated[:, :, :, 1:]
        tv = (dx ** 2).sum() / dx.numel() + (dy ** 2).sum() / dy.numel()
        total = w_style * style_loss + w_content * content_loss + w_tv * tv
    return generated, content_loss, layer_losses, style_loss, tv, total


def write_losses(outdir):
    weights, net = write_random_networks(outdir)
    content = torch.rand(2, 3, 64, 64) * 255
    style = torch.rand(1, 3, 64, 64) * 255
    w_content, w_style, w_tv = 1.0, 100.0, 3.0
    generated, content_loss, layer_losses, style_loss, tv, total = seed_losses(
        weights, net, content, style, w_content, w_style, w_tv)
    torch.save({
        "content": content, "style": style, "generated": generated,
        "weights": torch.tensor([w_content, w_style, w_tv], dtype=torch.float64),
        "content_loss": content_loss.double(), "style_loss": style_loss.double(),
        "style_layer_losses": torch.stack(layer_losses).double(),
        "tv_loss": tv.double(), "total_loss": total.double(),
    }, f"{outdir}/expected.pt")
    print(f"reference losses written to {outdir}: content {content_loss:.6g} style {style_loss:.6g} "
          f"tv {tv:.6g} total {total:.6g}")


def photo_like(size):
    """Smooth colour fields plus fine noise: rich in the detail a blur would remove."""
    coarse = torch.rand(1, 3, size // 16, size // 16) * 255
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (smooth + torch.randn(1, 3, size, size) * 25).clamp(0, 255).round().to(torch.uint8)[0]


def write_file_losses(outdir, size=256):
    import json
    from PIL import Image
    import numpy as np
    weights, net = write_random_networks(outdir)
    for name in ("content", "style"):
        Image.fromarray(photo_like(size).permute(1, 2, 0).numpy()).save(f"{outdir}/{name}.png")

    def read(name):  # the file's own pixels: PIL decode, no resizing
        array = np.asarray(Image.open(f"{outdir}/{name}.png").convert("RGB"), dtype=np.float32)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)

    # `stylefleet losses` defaults: content 1, style 100, tv 0.
    _, content_loss, layer_losses, style_loss, tv, total = seed_losses(
        weights, net, read("content"), read("style"), 1.0, 100.0, 0.0)
    names = [VGG_NAMES[l] for l in (1, 3, 6, 9)]
    expected = {"content_loss": content_loss.item(), "style_loss": style_loss.item(),
                "tv_loss": tv.item(), "total_loss": total.item(),
                "style_loss_by_layer": {n: v.item() for n, v in zip(names, layer_losses)}}
    with open(f"{outdir}/expected.json", "w") as f:
        json.dump(expected, f, indent=2)
    print(f"file losses written to {outdir}: {expected}")


def check_export(model_path, data_path):
    state = torch.load(model_path)
    net = TransformerNet()
    net.load_state_dict(state)  # strict: names and shapes must match exactly
    data = torch.load(data_path)
    with torch.no_grad():
        out = net(data["input"])
    diff = (out - data["output"]).abs().max().item()
    scale = data["output"].abs().max().item()
    print(f"export check: max abs diff {diff:.3g} (output scale {scale:.3g})")
    if not diff <= 1e-4 * max(scale, 1.0):
        sys.exit(f"export check failed: C++ and PyTorch outputs differ by {diff}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "losses":
        write_losses(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "file-losses":
        write_file_losses(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "export":
        check_export(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
