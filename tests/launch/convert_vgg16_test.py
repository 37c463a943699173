#!/usr/bin/python3
"""launch/convert_vgg16.py's output, checked against torchvision's own VGG-16 layers.

  convert_vgg16_test.py SOURCE_DIR

With random weights (no pretrained ones can be downloaded here): the default output
records the seed-balanced convention and its activation scale S, and every one of the
13 ReLU outputs is exactly S times torchvision's for the same image; --activation-scale 1
records "torchvision" and leaves them as they are. The default S is read from the
converter's --help and must be the one the docs and the C++ loader state.

Without a network (downloads are sent to a closed local port, so this never downloads):
the file torchvision downloads, given with --from or found in torchvision's cache,
converts; when it is in neither, the converter says in two lines what to do offline
(the file, where to get it, --from, random:SEED) instead of urllib's traceback.
"""
import collections
import os
import re
import socket
import subprocess
import sys
import tempfile

import torch
import torch.nn as nn
import torchvision
import torchvision.transforms.functional as TF

SOURCE = sys.argv[1]
CONVERTER = os.path.join(SOURCE, "launch/convert_vgg16.py")
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def random_features(seed):
    """torchvision's VGG-16 feature layers, random weights that keep activations alive
    (fan_in) and non-zero biases, so scaling the biases is tested too."""
    torch.manual_seed(seed)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    for module in features:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            nn.init.normal_(module.bias, std=0.05)
    return features.eval()


def relu_outputs(features, image):
    """Every ReLU output for a 0..255 image fed as torchvision's models expect it."""
    x = TF.normalize(image / 255.0, IMAGENET_MEAN, IMAGENET_STD)
    outputs = []
    with torch.no_grad():
        for module in features:
            x = module(x)
            if isinstance(module, nn.ReLU):
                outputs.append(x.clone())
    return outputs


def convert(source, out, *flags):
    r = subprocess.run([sys.executable, CONVERTER, "--from", source, "--out", out, *flags],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return torch.load(out)


def check_file(state, features, image, expected_name, expected_scale):
    name = bytes(state["stylefleet.convention"].tolist()).decode("ascii")
    assert name == expected_name, name
    scale = state["stylefleet.activation_scale"].item()
    assert scale == expected_scale, (scale, expected_scale)
    assert state["stylefleet.input_scale"].item() == 1.0
    converted = random_features(0)
    converted.load_state_dict({k[len("features."):]: v for k, v in state.items()
                               if k.startswith("features.")})
    reference, scaled = relu_outputs(features, image), relu_outputs(converted, image)
    assert len(reference) == 13
    for layer, (a, b) in enumerate(zip(reference, scaled)):
        worst = ((b - expected_scale * a).abs().max() / (expected_scale * a).abs().max()).item()
        assert worst < 1e-5, f"{expected_name}: ReLU {layer}: relative difference {worst}"
    print(f"{expected_name}: convention recorded, all 13 ReLU outputs x{expected_scale:g}")


def documented_default():
    help_text = subprocess.run([sys.executable, CONVERTER, "--help"], capture_output=True,
                               text=True, check=True).stdout
    found = re.search(r"default (\d+(?:\.\d+)?): seed-balanced", help_text)
    assert found, "the converter's --help does not state the seed-balanced default"
    scale = float(found.group(1))
    phrase = f"seed-balanced (activation scale {scale:g})"
    for doc in ("README.md", "configs/README.md"):
        with open(os.path.join(SOURCE, doc)) as f:
            assert phrase in f.read(), f"{doc} does not say '{phrase}'"
    with open(os.path.join(SOURCE, "src/model/vgg16.h")) as f:
        assert f"kSeedBalancedActivationScale = {scale:g}.0;" in f.read(), "vgg16.h disagrees"
    return scale


def offline_env(torch_home, port):
    """An environment in which torchvision's cache is torch_home and every download is
    refused at once (a proxy on a local port nothing listens on), network or not."""
    env = dict(os.environ, TORCH_HOME=torch_home)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy",
                 "NO_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(name, None)
    env["https_proxy"] = env["http_proxy"] = f"http://127.0.0.1:{port}"
    return env


def run_converter(env, *args):
    return subprocess.run([sys.executable, CONVERTER, *args], capture_output=True, text=True,
                          env=env, timeout=240)


def check_offline(work):
    """The torchvision file itself (all of vgg16's keys, classifier too) via --from and via
    torchvision's cache; and the plain offline message when there is neither."""
    # Bound but not listening: connections to it are refused immediately.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    try:
        port = closed.getsockname()[1]
        torch.manual_seed(3)
        reference = torchvision.models.vgg16(weights=None).state_dict()
        downloaded = os.path.join(work, "vgg16-397923af.pth")
        torch.save(reference, downloaded)
        empty_home = os.path.join(work, "empty_torch_home")
        os.makedirs(empty_home)
        env = offline_env(empty_home, port)

        out = os.path.join(work, "from.pth")
        r = run_converter(env, "--from", downloaded, "--out", out)
        assert r.returncode == 0, r.stderr
        converted = torch.load(out)
        assert torch.equal(converted["features.28.bias"], 90.0 * reference["features.28.bias"])
        assert torch.equal(converted["features.2.weight"], reference["features.2.weight"])
        assert not any(k.startswith("classifier.") for k in converted)

        out = os.path.join(work, "offline.pth")
        r = run_converter(env, "--out", out)
        assert r.returncode != 0, "converted without weights or network"
        assert "Traceback" not in r.stderr, r.stderr
        message = [line for line in r.stderr.splitlines() if not line.startswith("Downloading")]
        assert len(message) <= 2, r.stderr
        for needed in ("https://download.pytorch.org/models/vgg16-397923af.pth",
                       "--from vgg16-397923af.pth", "loss_network.weights: random:SEED"):
            assert needed in r.stderr, f"offline message lacks '{needed}': {r.stderr}"
        assert not os.path.exists(out)

        r = run_converter(env, "--from", os.path.join(work, "absent.pth"), "--out", out)
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert "absent.pth: no such file" in r.stderr, r.stderr

        cached_home = os.path.join(work, "cached_torch_home")
        os.makedirs(os.path.join(cached_home, "hub", "checkpoints"))
        os.symlink(downloaded, os.path.join(cached_home, "hub", "checkpoints",
                                            "vgg16-397923af.pth"))
        r = run_converter(offline_env(cached_home, port), "--out", out)
        assert r.returncode == 0, r.stderr
        assert torch.equal(torch.load(out)["features.0.bias"], 90.0 * reference["features.0.bias"])
    finally:
        closed.close()
    print("offline: --from and the cache convert; without either a plain two-line message")


def main():
    default_scale = documented_default()
    features = random_features(11)
    image = torch.rand(2, 3, 40, 36) * 255
    with tempfile.TemporaryDirectory() as work:
        source = os.path.join(work, "torchvision.pth")
        # What users have: torch.save(model.state_dict()), an OrderedDict with the keys of
        # torchvision's vgg16 (its classifier left out: 500 MB the converter ignores).
        torch.save(collections.OrderedDict((f"features.{k}", v)
                                           for k, v in features.state_dict().items()), source)
        check_file(convert(source, os.path.join(work, "default.pth")), features, image,
                   "seed-balanced", default_scale)
        check_file(convert(source, os.path.join(work, "plain.pth"), "--activation-scale", "1"),
                   features, image, "torchvision", 1.0)
        check_file(convert(source, os.path.join(work, "other.pth"), "--activation-scale", "7"),
                   features, image, "custom", 7.0)
        check_offline(work)
    print("convert_vgg16: ok")


if __name__ == "__main__":
    main()
