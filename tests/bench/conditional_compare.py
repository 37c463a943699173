#!/usr/bin/python3
"""What one conditional network costs and gains against one network per style.

  conditional_compare.py STYLEFLEET [--images-per-style N] [--image-size PX] [--keep DIR]

Trains 8 styles on the shipped demo photos (configs/data) three ways, each style
seeing the same number of images:
  per_style, one after another   8 networks, batch 2, styles_at_once 1
  per_style, together            8 networks, batch 2, styles_at_once 8
  conditional                    1 network, batch 8 (one image of each style per step)
then adds a ninth style to the conditional network (job.base_model). It prints
one Markdown table of wall time and training images/s, the size of each model,
the parameters and model-file bytes a style adds, and the total loss of every
style (`stylefleet losses` on two held-out photos, mean) after training.

The loss network is the random one of the demo (no pretrained VGG-16 here), so
the losses compare the two kinds of network, not artistic quality. The 8
styles are the 6 shipped images plus candy and mosaic with 512 px style images
(other Gram targets). Timings are of this machine only; compare within one run.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reliability"))
from harness import write_job  # noqa: E402 (the tests' one job-file writer)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STYLES = [("mosaic", "mosaic.jpg", {}), ("candy", "candy.jpg", {}),
          ("starry", "starry.jpg", {"style_weight": 15}), ("udnie", "udnie.jpg", {}),
          ("wave", "wave.jpg", {}), ("scream", "scream.jpg", {}),
          ("candy_512", "candy.jpg", {"style_image_size": 512}),
          ("mosaic_512", "mosaic.jpg", {"style_image_size": 512})]
# Held out: the content folder's last two photos are scored, not trained on.
SCORED = ["0120.jpg", "0124.jpg"]


def write_setup_job(path, name, output, network, batch, steps, at_once, styles, image_size,
                    base=""):
    """The job of one setup; `styles` are (name, shipped image, other keys of the entry)."""
    job = {"name": name, "output_dir": output, "seed": 42, "network": network,
           "styles_at_once": at_once}
    if base:
        job["base_model"] = base
    style_dir = os.path.join(REPO, "configs", "data", "styles")
    write_job(
        path, job=job,
        data={"content_dir": os.path.join(os.path.dirname(output), "photos"),
              "image_size": image_size, "validation_images": []},
        loss_network={"weights": "random:7", "content_layers": ["conv2_2"],
                      "style_layers": ["conv1_1", "conv1_2", "conv2_2", "conv3_3", "conv4_3"]},
        training={"batch_size": batch, "epochs": 0, "max_steps": steps, "learning_rate": 0.02,
                  "style_weight": 10, "log_every_steps": steps, "preview_every_steps": 0},
        checkpoint={"every_steps": steps, "keep": 1},
        styles=[dict({"name": style, "image": os.path.join(style_dir, image)}, **extra)
                for style, image, extra in styles])


def run(command, log):
    start = time.monotonic()
    with open(log, "w") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT)
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(command)}; see {log}")
    return time.monotonic() - start


def folder_bytes(path):
    return os.path.getsize(os.path.join(path, "model.pt"))


def score(stylefleet, job, style, model, photos_dir):
    """Mean (total, content, style) loss over the held-out photos."""
    sums = [0.0, 0.0, 0.0]
    for photo in SCORED:
        out = subprocess.run([stylefleet, "losses", "--job", job, "--style", style, "--model", model,
                              "--content", os.path.join(photos_dir, photo)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"losses failed for {style}: {out.stderr}")
        terms = json.loads(out.stdout)
        for i, key in enumerate(("total_loss", "content_loss", "style_loss")):
            sums[i] += terms[key] / len(SCORED)
    return sums


def info_line(stylefleet, model, prefix):
    out = subprocess.run([stylefleet, "info", model], capture_output=True, text=True, check=True)
    return next(line for line in out.stdout.splitlines() if line.startswith(prefix))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stylefleet")
    parser.add_argument("--images-per-style", type=int, default=48,
                        help="images each style trains on (a multiple of 2; default 48)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    if args.images_per_style % 2 or args.images_per_style < 2:
        sys.exit("--images-per-style must be an even number >= 2")
    work = args.keep or tempfile.mkdtemp(prefix="conditional_compare_")
    os.makedirs(os.path.join(work, "photos"), exist_ok=True)
    content = os.path.join(REPO, "configs", "data", "content")
    for photo in sorted(os.listdir(content)):
        if photo not in SCORED:
            target = os.path.join(work, "photos", photo)
            if not os.path.exists(target):
                os.symlink(os.path.join(content, photo), target)
    n = args.images_per_style
    setups = [("per_style, one after another", "per_style", 2, n // 2, 1),
              ("per_style, together (styles_at_once 8)", "per_style", 2, n // 2, 8),
              ("conditional", "conditional", 8, n, 0)]
    rows, losses = [], {}
    for index, (label, network, batch, steps, at_once) in enumerate(setups):
        name = f"setup{index}"
        output = os.path.join(work, name)
        job = os.path.join(work, name + ".yaml")
        write_setup_job(job, name, output, network, batch, steps, at_once, STYLES, args.image_size)
        subprocess.call(["rm", "-rf", output])  # a fresh run, not a resume
        print(f"training: {label} ...", file=sys.stderr, flush=True)
        seconds = run([args.stylefleet, "train", job, "--no-progress"],
                      os.path.join(work, name + ".log"))
        images = n * len(STYLES)
        if network == "conditional":
            models = [os.path.join(output, "conditional")]
        else:
            models = [os.path.join(output, s[0]) for s in STYLES]
        total_bytes = sum(folder_bytes(m) for m in models)
        rows.append((label, seconds, images / seconds, len(models), total_bytes))
        losses[label] = {}
        for style, _, _ in STYLES:
            model = models[0] if network == "conditional" else os.path.join(output, style)
            losses[label][style] = score(args.stylefleet, job, style, model, content)
    # A ninth style added to the trained conditional network: only its rows train.
    base = os.path.join(work, "setup2", "conditional", "model.pt")
    output = os.path.join(work, "added")
    subprocess.call(["rm", "-rf", output])
    job = os.path.join(work, "added.yaml")
    write_setup_job(job, "added", output, "conditional", 2, n // 2, 0,
                    [("udnie_512", "udnie.jpg", {"style_image_size": 512})], args.image_size, base)
    print("training: a ninth style added ...", file=sys.stderr, flush=True)
    added_seconds = run([args.stylefleet, "train", job, "--no-progress"],
                        os.path.join(work, "added.log"))
    added_bytes = folder_bytes(os.path.join(output, "conditional")) - os.path.getsize(base)
    added_loss = score(args.stylefleet, job, "udnie_512", os.path.join(output, "conditional"),
                       content)

    print(f"\n{len(STYLES)} styles, {n} images per style at {args.image_size} px, "
          f"{os.cpu_count()} cores\n")
    print("| setup | networks | wall s | training images/s | model files, bytes |")
    print("|---|---:|---:|---:|---:|")
    for label, seconds, rate, count, total_bytes in rows:
        print(f"| {label} | {count} | {seconds:.1f} | {rate:.2f} | {total_bytes:,} |")
    print(f"\nper-style model: {info_line(args.stylefleet, os.path.join(work, 'setup0', 'mosaic'), 'parameters')}")
    print(f"conditional model: {info_line(args.stylefleet, base, 'parameters')}")
    print(f"a ninth style added (job.base_model, {n // 2} steps of batch 2, {added_seconds:.1f} s): "
          f"the model file grew by {added_bytes:,} bytes; its total loss {added_loss[0]:.4g}")
    print("\nLoss per style after training, total = content + style_weight x style (mean of "
          f"`stylefleet losses` on {', '.join(SCORED)}, not trained on):\n")
    labels = [r[0] for r in rows]
    print("| style | " + " | ".join(f"{l}: total / content / style" for l in labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for style, _, _ in STYLES:
        print(f"| {style} | " + " | ".join(
            "{:.4g} / {:.4g} / {:.4g}".format(*losses[l][style]) for l in labels) + " |")
    if not args.keep:
        subprocess.call(["rm", "-rf", work])


if __name__ == "__main__":
    main()
