#!/usr/bin/python3
"""Writes unusual and broken image files into a folder for the data tests.

  make_odd_images.py DIR

Decodable (must be used): grayscale and CMYK JPEGs, 16-bit, paletted and RGBA PNGs, a 1x1
PNG, a JPEG named .png. Broken (must be skipped): a PNG header claiming 65535x65535 pixels (a
decompression bomb), a truncated JPEG, an empty file, a JPEG with a corrupt header, text.
"""
import io
import os
import struct
import sys
import zlib

from PIL import Image

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
gradient = Image.linear_gradient("L").resize((96, 80))
rgb = Image.merge("RGB", (gradient, gradient.rotate(90), gradient.transpose(Image.FLIP_LEFT_RIGHT)))

gradient.save(f"{out}/ok_grayscale.jpg")
rgb.convert("CMYK").save(f"{out}/ok_cmyk.jpg")
Image.frombytes("I;16", (64, 48), bytes(range(256)) * 24).save(f"{out}/ok_16bit.png")
rgb.convert("P", palette=Image.ADAPTIVE, colors=16).save(f"{out}/ok_paletted.png")
rgb.convert("RGBA").save(f"{out}/ok_rgba.png")
Image.new("RGB", (1, 1), (200, 10, 10)).save(f"{out}/ok_1x1.png")
rgb.save(f"{out}/ok_jpeg_named.png", format="JPEG")


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


with open(f"{out}/bad_bomb.png", "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 65535, 65535, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))
buffer = io.BytesIO()
rgb.save(buffer, format="JPEG")
jpeg = buffer.getvalue()
with open(f"{out}/bad_truncated.jpg", "wb") as f:
    f.write(jpeg[: len(jpeg) // 2])
open(f"{out}/bad_empty.jpg", "wb").close()
with open(f"{out}/bad_header.jpg", "wb") as f:
    f.write(b"\xff\xd8\xff" + bytes(range(200)))
with open(f"{out}/bad_text.png", "w") as f:
    f.write("this is not an image\n")
