#!/usr/bin/python3
"""Writes the seed corpus of the model-file fuzzer: small real files of each kind the reader
takes, made by PyTorch itself, plus the hostile files of issue 32 (kept as regression inputs).

usage: make_tensor_corpus.py OUTPUT_DIR
"""
import collections
import io
import os
import struct
import sys
import zipfile

import torch

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def save(name, obj, **kwargs):
    torch.save(obj, os.path.join(out, name), **kwargs)


torch.manual_seed(0)
small = {"conv.weight": torch.randn(2, 3, 3, 3), "conv.bias": torch.zeros(2),
         "in.weight": torch.ones(4, dtype=torch.float64), "steps": torch.tensor([3], dtype=torch.int64),
         "name": torch.tensor(list(b"candy"), dtype=torch.uint8)}
save("zip_dict.pt", small)
save("zip_ordered.pt", collections.OrderedDict(small))  # what model.state_dict() returns
save("legacy_dict.pt", small, _use_new_zipfile_serialization=False)
save("legacy_ordered.pt", collections.OrderedDict(small), _use_new_zipfile_serialization=False)
shared = torch.randn(8)
save("zip_views.pt", {"a": shared[:4], "b": shared[4:], "c": shared.view(2, 4)})
save("zip_half.pt", {"h": torch.randn(3).half(), "b": torch.randn(3).bfloat16()})

# Issue 32, item 1: 100,000 TUPLE1 under a None, in a zip's data.pkl.
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
    z.writestr("archive/data.pkl", b"\x80\x02N" + b"\x85" * 100000 + b".")
    z.writestr("archive/version", b"3\n")
with open(os.path.join(out, "regression_deep_tuples.pt"), "wb") as f:
    f.write(buffer.getvalue())
# Nested MARK/LIST likewise (legacy pickle).
with open(os.path.join(out, "regression_deep_lists.pt"), "wb") as f:
    f.write(b"\x80\x02" + b"(" * 100000 + b"l" * 100000 + b".")
# Item 2: 46 bytes: a local header's magic, a ZIP64 end locator pointing far away, an end
# record with 0xFFFF entries.
tiny = struct.pack("<I", 0x04034B50)
tiny += struct.pack("<IIQI", 0x07064B50, 0, 0x100000000000, 1)
tiny += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0, 0, 0)
with open(os.path.join(out, "regression_zip64_far.pt"), "wb") as f:
    f.write(tiny)
print(f"corpus: {len(os.listdir(out))} files in {out}")
