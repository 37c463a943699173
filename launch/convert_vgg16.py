#!/usr/bin/python3
"""Write torchvision's ImageNet VGG-16 as a stylefleet loss-network weights file.

  /usr/bin/python3 launch/convert_vgg16.py --out models/vgg16.pth [--from vgg16-397923af.pth]
                                           [--activation-scale S]

--from   a torchvision VGG-16 state dict already on disk (e.g. from another machine's
         ~/.cache/torch/hub/checkpoints/); without it torchvision downloads the weights,
         which needs internet access.
--activation-scale
         multiply every activation by S (first conv's weights and all biases scaled; exact,
         since ReLU and max-pool are positively homogeneous). The seed's loss weights
         (content 1, style ~100) were tuned on TF-slim's VGG, fed 0..255 images, whose
         activations are far larger than torchvision's (0..1, normalized input); a scale
         of about 58 (~255 * 0.226, the input std ratio) brings them close.

The file is a dict of the 26 `features.N.weight/bias` tensors plus the input convention:
`stylefleet.input_scale` (1: the network expects 0..1 images), `stylefleet.mean`,
`stylefleet.std` (ImageNet statistics).
"""
import argparse
import os

import torch

CONV_INDEX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--from", dest="source", help="torchvision vgg16 state dict file")
    parser.add_argument("--activation-scale", type=float, default=1.0)
    args = parser.parse_args()
    if args.source:
        state = torch.load(args.source, map_location="cpu")
    else:
        import torchvision
        state = torchvision.models.vgg16(weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1).state_dict()
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
    out["stylefleet.input_scale"] = torch.tensor(1.0)
    out["stylefleet.mean"] = torch.tensor([0.485, 0.456, 0.406])
    out["stylefleet.std"] = torch.tensor([0.229, 0.224, 0.225])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(out, args.out)
    print(f"wrote {args.out}: {len(CONV_INDEX)} conv layers, activation scale {args.activation_scale}")


if __name__ == "__main__":
    main()
