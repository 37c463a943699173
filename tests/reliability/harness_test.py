#!/usr/bin/python3
"""The test helpers in harness.py judge what they claim to (ctest label `reliability`).

same_tensors decides whether two runs ended with the same model in the cluster and resume
tests; a comparison that looked only at the first file's tensors passed a model that had
gained a tensor, so these cases cover each way two files can differ.

usage: harness_test.py
"""
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, finish, same_tensors  # noqa: E402


def main():
    with tempfile.TemporaryDirectory(prefix="stylefleet-harness-") as work:
        generator = torch.Generator().manual_seed(7)
        model = {f"layer{i}.weight": torch.randn(3, generator=generator) for i in range(6)}

        def saved(name, tensors):
            path = os.path.join(work, name)
            torch.save(tensors, path)
            return path

        base = saved("base.pt", model)
        with_records = saved("records.pt", dict(model, **{"stylefleet.job": torch.zeros(1)}))
        gained = saved("gained.pt", dict(model, extra=torch.zeros(1)))
        lost = saved("lost.pt", {k: v for k, v in model.items() if k != "layer3.weight"})
        changed = dict(model)
        changed["layer5.weight"] = changed["layer5.weight"].clone()
        changed["layer5.weight"][1] = torch.nextafter(changed["layer5.weight"][1], torch.tensor(9.0))
        changed = saved("changed.pt", changed)

        same, said = same_tensors(base, with_records, 6)
        check(same, f"the same tensors with other stylefleet.* records are the same: {said}")
        for name, other in (("gained a tensor", gained), ("lost a tensor", lost),
                            ("one value one step apart", changed)):
            for a, b in ((base, other), (other, base)):
                same, said = same_tensors(a, b, 6)
                check(not same, f"{name} ({os.path.basename(a)} against "
                                f"{os.path.basename(b)}) differs: {said}")
        same, said = same_tensors(base, base, 7)
        check(not same, f"fewer tensors than at_least do not pass: {said}")
    return finish("harness_test")


if __name__ == "__main__":
    sys.exit(main())
