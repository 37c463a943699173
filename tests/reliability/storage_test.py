#!/usr/bin/python3
"""Storage faults (ctest label `reliability`): a full disk, a read-only folder, a deleted file.

Each style folder lives on a small tmpfs (`mount -t tmpfs -o size=...`; the test is skipped,
saying so, where mounting is not permitted):
- full disk: checkpoints (about 20 MB each here) fill a 28 MB file system. The run must stop
  with exit 1 and a message naming the file that could not be written, leave no temporary
  file behind, keep every metrics.jsonl line a whole JSON record and leave no 0-byte image.
- read-only: the same folder remounted read-only: the rerun exits 1 with a clear message.
- deleted metrics.jsonl: deleting it while training is noticed with a warning.

usage: storage_test.py STYLEFLEET_BINARY
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import harness
from harness import check, finish

BINARY = sys.argv[1]


def write_job(root, out, steps, log_every=1, preview_every=1, checkpoint_every=1):
    from PIL import Image  # python3-pil
    os.makedirs(os.path.join(root, "photos"), exist_ok=True)
    for i in range(8):
        Image.frombytes("RGB", (72, 72), os.urandom(72 * 72 * 3)).save(os.path.join(root, "photos", f"{i}.png"))
    Image.new("RGB", (80, 80), (200, 40, 40)).save(os.path.join(root, "style.png"))
    return harness.write_job(
        os.path.join(root, "job.yaml"),
        job={"name": "storage", "output_dir": out},
        data={"content_dir": "photos", "image_size": 64, "loader_threads": 1},
        training={"batch_size": 2, "epochs": 0, "max_steps": steps, "log_every_steps": log_every,
                  "preview_every_steps": preview_every},
        checkpoint={"every_steps": checkpoint_every, "keep": 3},
        monitoring={"listen": "off", "linger_seconds": 0},
        styles=[{"image": "style.png"}])


def run(job, timeout=300):
    p = subprocess.run([BINARY, "train", job, "--no-progress", "--threads", "1"], capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def leftovers(folder):
    found = []
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            if name.endswith(".tmp") or (name.endswith((".png", ".jpg")) and os.path.getsize(path) == 0):
                found.append(path)
    return found


def whole_records(metrics):
    if not os.path.exists(metrics):
        return True
    with open(metrics) as f:
        for line in f:
            try:
                json.loads(line)
            except ValueError:
                return False
    return True


def full_and_read_only(root):
    mnt = os.path.join(root, "mnt")
    os.makedirs(mnt)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=28m", "tmpfs", mnt]).returncode != 0:
        print("SKIP full-disk and read-only checks: mounting a tmpfs is not permitted here")
        return
    try:
        job = write_job(root, mnt, steps=6)
        code, out = run(job)
        style = os.path.join(mnt, "style")
        check(code == 1, f"full disk: exit {code} (1 expected)")
        check("write failed" in out or "cannot append" in out or "No space left" in out,
              "full disk: the message says what could not be written\n" + out[-600:])
        check(not leftovers(mnt), f"full disk: no temporary or empty files left ({leftovers(mnt)})")
        check(whole_records(os.path.join(style, "metrics.jsonl")), "full disk: every metrics.jsonl line is whole")
        check(not os.path.exists(os.path.join(style, "model.pt")), "full disk: no model of a run that failed")
        subprocess.run(["mount", "-o", "remount,ro", mnt], check=True)
        code, out = run(job)
        check(code == 1 and "Read-only file system" in out,
              f"read-only folder: exit {code} with a clear message\n" + out[-600:])
    finally:
        subprocess.run(["umount", mnt])


def deleted_metrics(root):
    out_dir = os.path.join(root, "out")
    job = write_job(root, out_dir, steps=60, preview_every=0, checkpoint_every=1000)
    metrics = os.path.join(out_dir, "style", "metrics.jsonl")
    p = subprocess.Popen([BINARY, "train", job, "--no-progress", "--threads", "1"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.exists(metrics) and os.path.getsize(metrics) > 0):
        time.sleep(0.05)
    if os.path.exists(metrics):
        os.remove(metrics)
    out, _ = p.communicate(timeout=300)
    check(p.returncode == 0 and "was deleted or truncated during the run" in out,
          f"deleted metrics.jsonl: exit {p.returncode}, noticed with a warning\n" + out[-600:])


def main():
    with tempfile.TemporaryDirectory() as root:
        full_and_read_only(root)
    with tempfile.TemporaryDirectory() as root:
        deleted_metrics(root)
    return finish("storage_test")


if __name__ == "__main__":
    sys.exit(main())
