#!/usr/bin/python3
"""Checks that python/stylefleet_torch.py runs a stylefleet model as the C++ side does.

  export_check.py MODEL DATA

MODEL: a file written by `stylefleet export` (per-style, conditional or arbitrary-style
network), or any stylefleet model file but an arbitrary-style one.
DATA: a dict saved by the C++ test (torch::pickle_save) with
  input           B x 3 x H x W float, RGB 0..255, H and W multiples of 4
  case.K.output   the C++ network's raw output (no padding, no clamp) for case K
  case.K.style    uint8 UTF-8 text: the style name of case K (empty: a per-style
                  network's only style), or
  case.K.blend    uint8 UTF-8 text "a=0.7,b=0.3": the blend of case K
and for an arbitrary-style model, in place of style and blend:
  case.K.style_images  uint8 UTF-8 text: the style image files, one a line
  case.K.blend         optional: "0.7,0.3", one weight per style image
  case.K.strength      float64 scalar (optional; default 1): the photos are `input`
(K: any text without dots, e.g. 0, 1, 2). Each case runs the raw network on `input`
here and must agree within 1e-3 (max abs difference); one line per case is printed.
For a conditional model it also checks, here, that a blend with all weight on one style
gives exactly (torch.equal) that style's output, for every style.

Exits nonzero, naming the case, on any disagreement or malformed DATA.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "python"))
import stylefleet_torch as sf  # noqa: E402

TOLERANCE = 1e-3


def text(tensor):
    return bytes(tensor.to(torch.uint8).reshape(-1).tolist()).decode("utf-8")


def read_cases(data):
    """{K: {'output': tensor, 'style' or 'blend': text}}; rejects keys it does not know,
    so that a misspelt key cannot leave a case unchecked."""
    cases = {}
    for key, value in data.items():
        if key == "input":
            continue
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != "case" or parts[2] not in (
                "output", "style", "blend", "style_images", "strength"):
            sys.exit(f"DATA: unexpected key '{key}' (expected input, case.K.output, "
                     "case.K.style, case.K.blend, case.K.style_images or case.K.strength)")
        cases.setdefault(parts[1], {})[parts[2]] = value
    if not cases:
        sys.exit("DATA holds no case.K.output entries: nothing to check")
    for k, case in sorted(cases.items()):
        if "output" not in case:
            sys.exit(f"case {k}: no case.{k}.output")
        if "style_images" in case:
            if "style" in case:
                sys.exit(f"case {k}: case.{k}.style_images and case.{k}.style exclude each other")
        elif "strength" in case:
            sys.exit(f"case {k}: case.{k}.strength needs case.{k}.style_images")
        elif ("style" in case) == ("blend" in case):
            sys.exit(f"case {k}: needs exactly one of case.{k}.style and case.{k}.blend")
    return cases


def arbitrary_case(model, case, x):
    """(what, output) of an arbitrary-style case: the norms its style images, blend and
    strength give, the raw network on `x`."""
    paths = text(case["style_images"]).split("\n")
    blend = text(case["blend"]) if "blend" in case else None
    strength = float(case["strength"]) if "strength" in case else 1.0
    what = (f"style images {', '.join(os.path.basename(p) for p in paths)}"
            f"{', blend ' + blend if blend else ''}, strength {strength:g}")
    images = [sf._read_image(path) for path in paths]
    norms = sf.arbitrary_norms(model, images, blend or None, strength, photos=x)
    return what, model.net(x, norms)


def one_hot_blend_failures(model, x):
    """For each style of a conditional model: the blend with all weight on it must give
    exactly the style's output. Returns the failures (one line each)."""
    failures = []
    if not model.net.conditional:
        return failures
    with torch.no_grad():
        for name in model.styles:
            alone = model.net(x, sf.style_argument(model, style=name))
            blended = model.net(x, sf.style_argument(model, blend={name: 1.0}))
            equal = torch.equal(alone, blended)
            print(f"one-hot blend of {name} equals style {name} exactly: {equal}")
            if not equal:
                failures.append(f"blend {name}=1 differs from style {name} by "
                                f"{(alone - blended).abs().max().item():.3g}")
    return failures


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    try:
        model = sf.load_model(sys.argv[1])
        data = sf.read_tensor_file(sys.argv[2])
    except (ValueError, OSError) as e:
        sys.exit(f"export check failed: {e}")
    if not isinstance(data, dict) or "input" not in data:
        sys.exit("DATA: expected a dict with 'input'")
    x = data["input"].float()
    failures = []
    with torch.no_grad():
        for k, case in sorted(read_cases(data).items()):
            # An empty style: a per-style network (whose export may carry no name).
            style = (text(case["style"]) or None) if "style" in case else None
            blend = text(case["blend"]) if "blend" in case else None
            what = f"blend {blend}" if blend is not None else f"style {style or '(per-style)'}"
            try:
                if "style_images" in case:
                    what, out = arbitrary_case(model, case, x)
                else:
                    out = model.net(x, sf.style_argument(model, style, blend))
            except (ValueError, OSError) as e:
                failures.append(f"case {k} ({what}): {e}")
                print(f"case {k} ({what}): {e}")
                continue
            expected = case["output"].float()
            if out.shape != expected.shape:
                failures.append(f"case {k} ({what}): output shape {list(expected.shape)}, "
                                f"expected {list(out.shape)}")
                print(failures[-1])
                continue
            diff = (out - expected).abs().max().item()
            print(f"case {k} ({what}): max abs diff {diff:.3g}")
            if not diff < TOLERANCE:
                failures.append(f"case {k} ({what}): C++ and PyTorch differ by {diff:.3g} "
                                f"(tolerance {TOLERANCE})")
        failures += one_hot_blend_failures(model, x)
    if failures:
        sys.exit("export check failed:\n  " + "\n  ".join(failures))
    print("export check passed")


if __name__ == "__main__":
    main()
