#!/usr/bin/python3
"""Checks that python/stylefleet_torch.py runs a stylefleet model as the C++ side does.

  conditional_export_check.py MODEL DATA

MODEL: a file written by `stylefleet export` (per-style or conditional network), or any
stylefleet model file.
DATA: a dict saved by the C++ test (torch::pickle_save) with
  input           B x 3 x H x W float, RGB 0..255, H and W multiples of 4
  case.K.output   the C++ network's raw output (no padding, no clamp) for case K
  case.K.style    uint8 UTF-8 text: the style name of case K (empty: a per-style
                  network's only style), or
  case.K.blend    uint8 UTF-8 text "a=0.7,b=0.3": the blend of case K
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
        if len(parts) != 3 or parts[0] != "case" or parts[2] not in ("output", "style", "blend"):
            sys.exit(f"DATA: unexpected key '{key}' (expected input, case.K.output, "
                     "case.K.style or case.K.blend)")
        cases.setdefault(parts[1], {})[parts[2]] = value
    if not cases:
        sys.exit("DATA holds no case.K.output entries: nothing to check")
    for k, case in sorted(cases.items()):
        if "output" not in case:
            sys.exit(f"case {k}: no case.{k}.output")
        if ("style" in case) == ("blend" in case):
            sys.exit(f"case {k}: needs exactly one of case.{k}.style and case.{k}.blend")
    return cases


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
        sys.exit(f"conditional export check failed: {e}")
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
                out = model.net(x, sf.style_argument(model, style, blend))
            except ValueError as e:
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
        sys.exit("conditional export check failed:\n  " + "\n  ".join(failures))
    print("conditional export check passed")


if __name__ == "__main__":
    main()
