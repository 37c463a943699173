#!/usr/bin/python3
"""Independent PyTorch reference for stylefleet's C++ tests (Debian's python3-torch).

  reference.py losses OUTDIR   writes random VGG-16 weights, a random transformer, input
                               images and the seed's loss terms computed here, for the C++
                               side to reproduce (tests/unit/loss_test.cc)
  reference.py file-losses OUTDIR
                               writes random networks, two 256 px PNGs and the losses of
                               `stylefleet losses --model` on the files' own pixels
                               (expected.json; expected_luminance.json with
                               --style-luminance-only)
  reference.py export MODEL DATA
                               loads a model exported by `stylefleet export` into this
                               file's TransformerNet, runs it on DATA['input'] and checks
                               that the result equals DATA['output'] (the C++ inference)
  reference.py convention OUTDIR
                               writes a torchvision VGG-16 features state dict (as
                               torch.save(model.state_dict()) does, for the converter), the
                               same weights as a plain dict, images, and the losses and their
                               input gradients computed with torchvision's own VGG layers and
                               input normalization (tests/unit/loss_test.cc)
  reference.py gradients OUTDIR
                               writes a torchvision-convention VGG-16, a random transformer,
                               images, and autograd's gradient of the total loss with respect
                               to every transformer parameter (tests/unit/gradient_test.cc)
  reference.py predictor OUTDIR
                               writes random networks, a random style predictor, style and
                               content images, the predictor's summary, embedding and norm
                               parameters, the arbitrary-style network's output with them and
                               the predictor's gradients of a probe of that output
                               (tests/unit/style_predictor_test.cc)
  reference.py adam IN OUT     runs torch.optim.Adam on the parameters and per-step gradients
                               in IN and writes the parameters and moments to OUT
                               (tests/unit/optim_test.cc)

The formulas are written from the seed's definitions, independently of the C++ code.
"""
import collections
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


def l2_loss(x):
    """tf.nn.l2_loss: half the sum of squares."""
    return (x ** 2).sum() / 2


def seed_losses(gen, target, style_grams, generated, content_layers, style_layers, weights):
    """The seed's loss terms, written as its TensorFlow code writes them (size = tf.size).

    Content and style multiply l2_loss by 2 (cancelling its half); total_variation_loss does
    not: l2_loss(dx) / size(dx) + l2_loss(dy) / size(dy).
    """
    w_content, w_style, w_tv = weights
    content = sum(l2_loss(gen[l] - target[l]) * 2 / gen[l].numel() for l in content_layers)
    layers = [l2_loss(gram(gen[l]) - g) * 2 / gen[l].numel() for l, g in zip(style_layers, style_grams)]
    style = sum(layers)
    y = generated[:, :, :-1, :] - generated[:, :, 1:, :]
    x = generated[:, :, :, :-1] - generated[:, :, :, 1:]
    tv = l2_loss(x) / x.numel() + l2_loss(y) / y.numel()
    total = w_style * style + w_content * content + w_tv * tv
    return {"content": content, "style": style, "style_layers": layers, "tv": tv, "total": total}


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
    input_scale = torch.tensor(255.0)
    mean = torch.tensor([123.68, 116.78, 103.94])
    std = torch.tensor([1.0, 1.0, 1.0])
    weights["stylefleet.input_scale"] = input_scale
    weights["stylefleet.mean"] = mean
    weights["stylefleet.std"] = std
    torch.save(dict(weights), f"{outdir}/vgg.pt")

    net = TransformerNet()
    torch.save(dict(net.state_dict()), f"{outdir}/transformer.pt")
    return weights, net, (input_scale, mean, std)


def write_losses(outdir):
    weights, net, (input_scale, mean, std) = write_random_networks(outdir)

    content = torch.rand(2, 3, 64, 64) * 255
    style = torch.rand(1, 3, 64, 64) * 255
    content_layers = [6]            # conv3_3
    style_layers = [1, 3, 6, 9]     # conv1_2 conv2_2 conv3_3 conv4_3
    w_content, w_style, w_tv = 1.0, 100.0, 3.0
    with torch.no_grad():
        generated = net(content)
        gen = vgg_features(weights, generated, content_layers + style_layers, input_scale, mean, std)
        tgt = vgg_features(weights, content, content_layers, input_scale, mean, std)
        sty = vgg_features(weights, style, style_layers, input_scale, mean, std)
        terms = seed_losses(gen, tgt, [gram(sty[l]) for l in style_layers], generated,
                            content_layers, style_layers, (w_content, w_style, w_tv))
        content_loss, style_loss, tv, total = terms["content"], terms["style"], terms["tv"], terms["total"]
        layer_losses = terms["style_layers"]
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
    """The seed's losses of `stylefleet losses --model` on two PNGs of `size` px, computed on
    the files' own pixels (no resize): what the command must report at --image-size `size`."""
    import json
    from PIL import Image
    import numpy as np
    weights, net, norm = write_random_networks(outdir)
    for name in ("content", "style"):
        Image.fromarray(photo_like(size).permute(1, 2, 0).numpy()).save(f"{outdir}/{name}.png")

    def read(name):  # the file's own pixels: PIL decode, no resizing
        array = np.asarray(Image.open(f"{outdir}/{name}.png").convert("RGB"), dtype=np.float32)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)

    content_layers, style_layers = [6], [1, 3, 6, 9]
    with torch.no_grad():
        content, style = read("content"), read("style")
        generated = net(content)
        gen = vgg_features(weights, generated, content_layers + style_layers, *norm)
        tgt = vgg_features(weights, content, content_layers, *norm)
        sty = vgg_features(weights, style, style_layers, *norm)
        # `stylefleet losses` defaults: content 1, style 100, tv 0.
        terms = seed_losses(gen, tgt, [gram(sty[l]) for l in style_layers], generated,
                            content_layers, style_layers, (1.0, 100.0, 0.0))
        # The style loss on luminance only (Gatys et al. 2016): both images' style features
        # come from their BT.601 luma in all three channels; content and TV from the colours.
        def grey(image):
            y = 0.299 * image[:, 0] + 0.587 * image[:, 1] + 0.114 * image[:, 2]
            return torch.stack([y, y, y], dim=1)
        gen_grey = vgg_features(weights, grey(generated), style_layers, *norm)
        sty_grey = vgg_features(weights, grey(style), style_layers, *norm)
        style_only = seed_losses(gen_grey, tgt, [gram(sty_grey[l]) for l in style_layers],
                                 generated, [], style_layers, (1.0, 100.0, 0.0))
        luminance = dict(terms, style=style_only["style"], style_layers=style_only["style_layers"],
                         total=100.0 * style_only["style"] + terms["content"] + 0.0 * terms["tv"])
    names = [VGG_NAMES[l] for l in style_layers]
    for file, t in (("expected.json", terms), ("expected_luminance.json", luminance)):
        expected = {"content_loss": t["content"].item(), "style_loss": t["style"].item(),
                    "tv_loss": t["tv"].item(), "total_loss": t["total"].item(),
                    "style_loss_by_layer": {n: v.item() for n, v in zip(names, t["style_layers"])}}
        with open(f"{outdir}/{file}", "w") as f:
            json.dump(expected, f, indent=2)
        print(f"file losses written to {outdir}/{file}: {expected}")


# torchvision's input convention for its ImageNet weights: RGB in 0..1, then these.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
CONTENT_LAYERS = [6]          # conv3_3
STYLE_LAYERS = [1, 3, 6, 9]   # conv1_2 conv2_2 conv3_3 conv4_3


def torchvision_features(seed):
    """torchvision's own VGG-16 feature layers with random weights.

    Kaiming fan_in rather than torchvision's fan_out init: with fan_out the deep layers'
    style losses are ~1e-9 and would hide errors in them.
    """
    import torchvision
    torch.manual_seed(seed)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    for module in features:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            nn.init.normal_(module.bias, std=0.01)
    return features


def features_state_dict(features):
    """The keys of torchvision.models.vgg16().state_dict() (an OrderedDict, as users have it)."""
    return collections.OrderedDict((f"features.{k}", v.clone()) for k, v in features.state_dict().items())


def torchvision_endpoints(features, image, layers, activation_scale=1.0):
    """Outputs after the ReLU of each conv in `layers` for a 0..255 image, fed the way
    torchvision's models expect it (0..1, normalized with the ImageNet mean and std)."""
    import torchvision.transforms.functional as TF
    x = TF.normalize(image / 255.0, IMAGENET_MEAN, IMAGENET_STD)
    relu_to_layer = {VGG_CONV_INDEX[l] + 1: l for l in layers}
    out = {}
    for i in range(max(relu_to_layer) + 1):
        x = features[i](x)
        if i in relu_to_layer:
            out[relu_to_layer[i]] = x * activation_scale
    return out


def kink_margin(features, image, deepest_layer):
    """How far a 0..255 image's pass through `features` (to the conv layer `deepest_layer`)
    stays from the points where its gradient jumps: the smallest |input| of a ReLU and the
    smallest gap between the two largest values of a max-pool window, each relative to that
    layer's largest magnitude.

    A unit closer to a kink than fp32 rounding (~1e-7 relative) can fall on either side of it
    in a float32 computation, and its gradient then takes another path: a float32 result and
    this float64 reference differ by far more than rounding, though both are right. The
    references pick inputs that keep a margin.
    """
    import torchvision.transforms.functional as TF
    x = TF.normalize(image.detach() / 255.0, IMAGENET_MEAN, IMAGENET_STD)
    margin = float("inf")
    with torch.no_grad():
        for module in features[:VGG_CONV_INDEX[deepest_layer] + 2]:
            if isinstance(module, nn.ReLU):
                margin = min(margin, (x.abs().min() / x.abs().max()).item())
            elif isinstance(module, nn.MaxPool2d):
                windows = x.unfold(2, 2, 2).unfold(3, 2, 2).flatten(-2)
                top = windows.topk(2, dim=-1).values
                live = top[..., 0] > 0  # windows of zeros pass no gradient
                if live.any():
                    margin = min(margin, ((top[..., 0] - top[..., 1])[live].min() / x.max()).item())
            x = module(x)
    return margin


def endpoint_losses(features, generated, content, style, weights, activation_scale=1.0):
    gen = torchvision_endpoints(features, generated, CONTENT_LAYERS + STYLE_LAYERS, activation_scale)
    with torch.no_grad():
        target = torchvision_endpoints(features, content, CONTENT_LAYERS, activation_scale)
        sty = torchvision_endpoints(features, style, STYLE_LAYERS, activation_scale)
    grams = [gram(sty[l]) for l in STYLE_LAYERS]
    return seed_losses(gen, target, grams, generated, CONTENT_LAYERS, STYLE_LAYERS, weights)


# Inputs whose float32 pass keeps this relative margin from every kink (kink_margin): ten
# times the rounding difference between two float32 computations of the same network.
KINK_MARGIN = 2e-6


def draw_away_from_kinks(draw, margin_of, tries=200):
    """The first of draw()'s results whose margin_of() is at least KINK_MARGIN."""
    for _ in range(tries):
        x = draw()
        if margin_of(x) >= KINK_MARGIN:
            return x
    sys.exit(f"no input in {tries} draws kept a margin of {KINK_MARGIN} from the ReLU/max-pool kinks")


def transformer_kink_margin(net, x):
    """kink_margin's measure for the transformer's ReLUs (each follows an instance norm)."""
    norms = [net.in1, net.in2, net.in3, net.in4, net.in5] + [
        getattr(net, f"res{i}").in1 for i in range(1, 6)]
    margins = []
    hooks = [n.register_forward_hook(lambda m, i, o: margins.append((o.abs().min() / o.abs().max()).item()))
             for n in norms]
    with torch.no_grad():
        y = net(x)
    for hook in hooks:
        hook.remove()
    return min(margins), y


def write_convention(outdir):
    """Weights in torchvision's convention, as a plain dict (read with the default
    convention) and as torchvision's OrderedDict (the converter's input), with the losses
    and their gradients with respect to the generated image (float32, as stylefleet)."""
    features = torchvision_features(4321)
    state = features_state_dict(features)
    torch.save(state, f"{outdir}/torchvision.pth")
    torch.save(dict(state), f"{outdir}/plain.pth")
    activation_scale = 3.0  # the converter's --activation-scale for converted.pth
    content = torch.rand(2, 3, 16, 16) * 255
    style = torch.rand(1, 3, 16, 16) * 255
    generated = draw_away_from_kinks(lambda: torch.rand(2, 3, 16, 16) * 255,
                                     lambda g: kink_margin(features, g, max(STYLE_LAYERS)))
    weights = (1.0, 1e4, 1e-5)
    out = {"content": content, "style": style, "generated": generated,
           "weights": torch.tensor(weights, dtype=torch.float64),
           "activation_scale": torch.tensor(activation_scale, dtype=torch.float64)}
    for name, scale in (("plain", 1.0), ("converted", activation_scale)):
        image = generated.clone().requires_grad_()
        terms = endpoint_losses(features, image, content, style, weights, scale)
        for term in ("content", "style", "total"):
            out[f"{name}.{term}_grad"] = torch.autograd.grad(terms[term], image, retain_graph=True)[0]
        for term in ("content", "style", "tv", "total"):
            out[f"{name}.{term}"] = terms[term].detach()
        out[f"{name}.style_layers"] = torch.stack(terms["style_layers"]).detach()
        print(f"convention reference {name}: " + " ".join(
            f"{t} {terms[t].item():.6g}" for t in ("content", "style", "tv", "total")))
    torch.save(out, f"{outdir}/expected.pt")


def write_gradients(outdir):
    """One training step's losses and autograd's gradients of the total with respect to the
    transformer's parameters (float32, as stylefleet trains), on a torchvision-convention
    loss network."""
    features = torchvision_features(99)
    torch.save(dict(features_state_dict(features)), f"{outdir}/vgg.pt")
    torch.manual_seed(77)
    net = TransformerNet()
    with torch.no_grad():
        # A random head outputs a near-black, near-uniform image (values within +-2 of 0),
        # which puts whole VGG channels next to a ReLU kink; a trained one spans 0..255.
        net.deconv3.conv2d.weight.mul_(100.0)
        net.deconv3.conv2d.bias.fill_(127.5)
    torch.save(dict(net.state_dict()), f"{outdir}/transformer.pt")

    def margin(content):
        in_transformer, generated = transformer_kink_margin(net, content)
        return min(in_transformer, kink_margin(features, generated, max(STYLE_LAYERS)))

    content = draw_away_from_kinks(lambda: torch.rand(2, 3, 16, 16) * 255, margin)
    style = torch.rand(1, 3, 16, 16) * 255
    weights = (1.0, 1000.0, 1e-3)
    terms = endpoint_losses(features, net(content), content, style, weights)
    names = [name for name, _ in net.named_parameters()]
    grads = torch.autograd.grad(terms["total"], [p for _, p in net.named_parameters()])
    out = {"content_image": content, "style_image": style,
           "weights": torch.tensor(weights, dtype=torch.float64)}
    for term in ("content", "style", "tv", "total"):
        out[term] = terms[term].detach()
    for name, grad in zip(names, grads):
        out[f"grad.{name}"] = grad
    torch.save(out, f"{outdir}/expected.pt")
    print("gradient reference: " + " ".join(
        f"{t} {terms[t].item():.6g}" for t in ("content", "style", "tv", "total")))


# An arbitrary-style network's norms in forward order: name, channels, whether it has a shift
# (a residual block's second norm has none: the next norms cancel it).
NORM_LAYOUT = ([("in1", 32, True), ("in2", 64, True), ("in3", 128, True)]
               + [(f"res{k}.in{j}", 128, j == 1) for k in range(1, 6) for j in (1, 2)]
               + [("in4", 64, True), ("in5", 32, True)])


def norm_with(x, scale, shift):
    """Instance norm (biased variance, eps 1e-5) with each image's own scale and shift."""
    mean = x.mean((2, 3), keepdim=True)
    var = x.var((2, 3), unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * scale[:, :, None, None] + shift[:, :, None, None]


def arbitrary_forward(net, x, norms):
    """`net`'s convolutions with each image's norm parameters `norms` [B x 2560] in the place of
    its own norms (Ghiasi et al.'s arbitrary-style network)."""
    slices, at = [], 0
    for _, c, shifted in NORM_LAYOUT:
        scale = norms[:, at:at + c]
        shift = norms[:, at + c:at + 2 * c] if shifted else torch.zeros_like(scale)
        slices.append((scale, shift))
        at += 2 * c if shifted else c
    assert at == norms.shape[1]
    it = iter(slices)

    def norm(y):
        return norm_with(y, *next(it))
    y = F.relu(norm(net.conv1(x)))
    y = F.relu(norm(net.conv2(y)))
    y = F.relu(norm(net.conv3(y)))
    for block in (net.res1, net.res2, net.res3, net.res4, net.res5):
        y = norm(block.conv2(F.relu(norm(block.conv1(y))))) + y
    y = F.relu(norm(net.deconv1(y)))
    y = F.relu(norm(net.deconv2(y)))
    return net.deconv3(y)


def write_predictor(outdir):
    """The style predictor (each layer's per-channel mean and standard deviation, standardized
    over the summary; a linear map to the embedding over the summary's length; a linear map of
    the embedding over its size to the norm parameters) and the arbitrary-style network."""
    weights, net, (input_scale, mean, std) = write_random_networks(outdir)
    torch.manual_seed(4321)
    layers = [1, 3, 6]  # conv1_2, conv2_2, conv3_3
    style = torch.rand(2, 3, 48, 48) * 255
    content = torch.rand(2, 3, 32, 32) * 255
    with torch.no_grad():
        features = vgg_features(weights, style, layers, input_scale, mean, std)
    parts = []
    for layer in layers:
        f = features[layer].flatten(2)
        parts += [f.mean(2), torch.sqrt(f.var(2, unbiased=False) + 1e-5)]
    summary = torch.cat(parts, 1)
    total = sum(2 * c if shifted else c for _, c, shifted in NORM_LAYOUT)
    embedding_size = 8
    bias = torch.zeros(total)
    at = 0
    for _, c, shifted in NORM_LAYOUT:
        bias[at:at + c] = 1.0
        at += 2 * c if shifted else c
    params = {
        "bottleneck.weight": torch.randn(embedding_size, summary.shape[1]) * 20,
        "bottleneck.bias": torch.randn(embedding_size) * 50,
        "to_norms.weight": torch.randn(total, embedding_size) * 0.5,
        "to_norms.bias": bias + torch.randn(total) * 0.1,
    }
    for p in params.values():
        p.requires_grad_(True)
    centred = summary - summary.mean(1, keepdim=True)
    standard = centred / torch.sqrt(centred.pow(2).mean(1, keepdim=True) + 1e-5)
    embedding = F.linear(standard, params["bottleneck.weight"], params["bottleneck.bias"]) / summary.shape[1]
    norms = F.linear(embedding / embedding_size, params["to_norms.weight"], params["to_norms.bias"])
    generated = arbitrary_forward(net, content, norms)
    probe = torch.randn(generated.shape)
    grads = torch.autograd.grad((generated * probe).sum(), list(params.values()))
    out = {"style": style, "content": content, "probe": probe, "summary": summary,
           "embedding": embedding.detach(), "norms": norms.detach(), "generated": generated.detach()}
    for (name, value), grad in zip(params.items(), grads):
        out[name] = value.detach()
        out["grad." + name] = grad
    torch.save(out, f"{outdir}/expected.pt")
    print(f"predictor reference: summary {summary.shape[1]}, embedding {embedding_size}, "
          f"norms {total}, output mean {generated.mean().item():.6g}")


def run_adam(in_path, out_path):
    """torch.optim.Adam on IN's param.I with grad.STEP.I; hyper = lr, beta1, beta2, eps,
    steps, the step index from which lr_after applies (-1: never), lr_after."""
    data = torch.load(in_path)
    lr, beta1, beta2, eps, steps, change_at, lr_after = data["hyper"].tolist()
    count = sum(1 for key in data if key.startswith("param."))
    params = [data[f"param.{i}"].clone().requires_grad_() for i in range(count)]
    optimizer = torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), eps=eps)
    for step in range(int(steps)):
        if step == int(change_at):
            for group in optimizer.param_groups:
                group["lr"] = lr_after
        for i, p in enumerate(params):
            p.grad = data[f"grad.{step}.{i}"].clone()
        optimizer.step()
    out = {}
    for i, p in enumerate(params):
        out[f"param.{i}"] = p.detach()
        out[f"exp_avg.{i}"] = optimizer.state[p]["exp_avg"]
        out[f"exp_avg_sq.{i}"] = optimizer.state[p]["exp_avg_sq"]
    torch.save(out, out_path)


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
    elif len(sys.argv) == 3 and sys.argv[1] == "convention":
        write_convention(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "gradients":
        write_gradients(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "predictor":
        write_predictor(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "adam":
        run_adam(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
