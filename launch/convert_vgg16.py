#!/usr/bin/python3
"""Write torchvision's ImageNet VGG-16 as a stylefleet loss-network weights file.

  /usr/bin/python3 launch/convert_vgg16.py --out models/vgg16.pth [--from vgg16-397923af.pth]
                                           [--activation-scale S]

--from   a torchvision VGG-16 state dict already on disk: vgg16-397923af.pth, the file
         torchvision downloads from https://download.pytorch.org/models/vgg16-397923af.pth
         (e.g. copied from another machine's ~/.cache/torch/hub/checkpoints/). Without it
         the converter uses that cache ($TORCH_HOME/hub/checkpoints/), or downloads the file
         there, which needs internet access. Offline, `loss_network.weights: random:SEED`
         trains without any weights file (for tests and demos, not for real styles).
--activation-scale S
         multiply every activation by S (first conv's weights and all biases scaled; exact,
         since ReLU and max-pool are positively homogeneous). Default 90: the "seed-balanced"
         convention, in which loss weights in the seed's scale (content 1, style ~100, as in
         stylefleet's defaults, the seed's per-style files and configs/) balance content and
         style as they did on the seed's TF-slim VGG-16 (Caffe weights, fed 0..255 minus the
         mean pixel). Scaling activations by S multiplies the content term by S^2 and the
         style term by S^4, so with S = 1 (torchvision's own activations) the style term is
         about 8100x weaker against the content than the seed's weights assume. 90 is the
         geometric mean of two estimates of the Caffe/torchvision activation ratio: 58 (the
         input std ratio, 255 x 0.226) and 141 (the style/content weights tuned for the two
         networks with the same losses: 5 in Johnson's fast-neural-style on Caffe VGG-16,
         1e5 in PyTorch's fast_neural_style example on torchvision's). No TF-slim or Caffe
         weights were at hand to measure it; configs/README.md gives the reasoning.
         --activation-scale 1 keeps torchvision's activations (convention "torchvision").

The file is a dict of the 26 `features.N.weight/bias` tensors plus the conventions:
`stylefleet.input_scale` (1: the network expects 0..1 images), `stylefleet.mean`,
`stylefleet.std` (ImageNet statistics), `stylefleet.activation_scale` (S) and
`stylefleet.convention` (its name as uint8 bytes: seed-balanced, torchvision or custom).
`stylefleet check` prints them.
"""
import argparse
import http.client
import math
import os
import socket
import urllib.error

import torch

CONV_INDEX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
# Keep in step with kSeedBalancedActivationScale in src/model/vgg16.h (a test compares them).
SEED_BALANCED_SCALE = 90.0
TORCHVISION_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
TORCHVISION_FILE = os.path.basename(TORCHVISION_URL)
# A download that gets no answer for this long counts as no network, rather than hanging.
DOWNLOAD_TIMEOUT_SECONDS = 60


def convention_name(scale):
    if scale == SEED_BALANCED_SCALE:
        return "seed-balanced"
    return "torchvision" if scale == 1.0 else "custom"


def load_source(path):
    """The state dict in a file given with --from; a plain message when it cannot be read."""
    try:
        state = torch.load(path, map_location="cpu")
    except FileNotFoundError:
        raise SystemExit(f"convert_vgg16.py: --from {path}: no such file")
    except Exception as e:  # pickle, zip and tensor errors alike: the file is not a state dict
        raise SystemExit(f"convert_vgg16.py: --from {path}: not a readable torch file ({e})")
    if not isinstance(state, dict):
        raise SystemExit(f"convert_vgg16.py: --from {path}: holds a {type(state).__name__}, "
                         f"not a state dict such as torchvision's {TORCHVISION_FILE}")
    return state


def download_torchvision():
    """torchvision's ImageNet weights from its cache, or downloaded into it. Without a network
    the reason and the offline ways out, in two lines, instead of urllib's traceback."""
    import torchvision
    weights = torchvision.models.VGG16_Weights.IMAGENET1K_V1
    cache = os.path.join(torch.hub.get_dir(), "checkpoints")
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_SECONDS)
    try:
        return weights.get_state_dict(progress=True)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise SystemExit(
            f"convert_vgg16.py: cannot download {weights.url} ({reason}); it is not in {cache}.\n"
            f"Offline: copy {TORCHVISION_FILE} from a machine with internet access (that URL, or "
            f"its ~/.cache/torch/hub/checkpoints/) and pass --from {TORCHVISION_FILE}; "
            f"for tests and demos, loss_network.weights: random:SEED needs no weights.")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--from", dest="source",
                        help=f"torchvision VGG-16 state dict file ({TORCHVISION_FILE}); "
                             f"default: torchvision's cache or a download")
    parser.add_argument("--activation-scale", type=float, default=SEED_BALANCED_SCALE,
                        help=f"activation scale S (default {SEED_BALANCED_SCALE:g}: seed-balanced)")
    args = parser.parse_args()
    if not (math.isfinite(args.activation_scale) and args.activation_scale > 0):
        parser.error("--activation-scale must be a finite number > 0")
    state = load_source(args.source) if args.source else download_torchvision()
    out = {}
    for n, idx in enumerate(CONV_INDEX):
        for kind in ("weight", "bias"):
            key = f"features.{idx}.{kind}"
            if key not in state:
                raise SystemExit(f"{args.source or 'torchvision'}: missing key {key}")
            tensor = state[key].float().clone()
            if kind == "bias" or n == 0:
                tensor *= args.activation_scale
            out[key] = tensor
    name = convention_name(args.activation_scale)
    out["stylefleet.input_scale"] = torch.tensor(1.0)
    out["stylefleet.mean"] = torch.tensor([0.485, 0.456, 0.406])
    out["stylefleet.std"] = torch.tensor([0.229, 0.224, 0.225])
    out["stylefleet.activation_scale"] = torch.tensor(args.activation_scale, dtype=torch.float64)
    out["stylefleet.convention"] = torch.tensor(list(name.encode("ascii")), dtype=torch.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(out, args.out)
    print(f"wrote {args.out}: {len(CONV_INDEX)} conv layers, convention {name} "
          f"(activation scale {args.activation_scale:g})")


if __name__ == "__main__":
    main()
