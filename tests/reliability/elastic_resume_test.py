#!/usr/bin/python3
"""Elastic resume (ctest labels `reliability;mpi`; issue 33 item 4).

A style checkpointed on N ranks resumes on M ranks with the same images per step: each rank
takes batch_size b*N/M in micro-batches of the recorded size. One style, batch 2 per rank:

  1. the reference: `mpirun -np 4` trains 10 steps;
  2. the same job trained 2 steps on 4 ranks, 2 more on 2 ranks (batch 4 in 2 micro-batches of 2),
     2 more by the same command again (an elastic run goes on as it began: the first version
     refused it as a changed batch_size), 2 more in one process (batch 8 in 4 micro-batches of 2),
     the last 2 on 2 ranks again: its model equals the reference bit for bit (same threads per
     rank), and each launch logs the batch it took; settings.json records the last set-up, with
     the same images per step and the job file's batch_size;
  3. 3 ranks cannot keep 8 images per step: refused with exit 2 before training, naming the
     numbers, and the folder is left as it was;
  4. a settings.json that is not a JSON object, or whose rank count is not a number, is named by
     `check` (it was ignored, and the resume took the job file's batch).

Before the fixed-order sums (GradientTree, the MPI backend's tree allreduce) step 2's model
differed from the reference; before elastic resume step 2 was refused as a changed setting.

usage: elastic_resume_test.py STYLEFLEET_BINARY SOURCE_DIR
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, finish, run, same_tensors  # noqa: E402
from harness import write_job as write_job_file  # noqa: E402

BINARY, SOURCE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]


def write_job(work, output, max_steps):
    return write_job_file(
        os.path.join(work, f"{output}-{max_steps}.yaml"),
        job={"name": "elastic", "output_dir": os.path.join(work, output), "seed": 5},
        data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 64, "loader_threads": 1},
        loss_network={"weights": "random:4"},
        training={"batch_size": 2, "epochs": 0, "max_steps": max_steps, "log_every_steps": 1,
                  "preview_every_steps": 0},
        checkpoint={"every_steps": 2, "keep": 2},
        styles=[{"name": "candy", "image": f"{SOURCE}/configs/data/styles/candy.jpg",
                 "style_image_size": 64}])


def expect(condition, what, log):
    """check() with the launch's log tail shown only when it fails."""
    check(condition, what if condition else f"{what}:\n{log[-2500:]}")


def train(job, ranks):
    command = [BINARY, "train", job, "--no-progress", "--threads", "1"]
    if ranks > 1:
        command = MPIRUN + ["-np", str(ranks)] + command
    return run(command)


def folder_digest(folder):
    digest = hashlib.sha256()
    for root, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(path.encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def main():
    work = tempfile.mkdtemp(prefix="stylefleet_elastic_")
    try:
        rc, log = train(write_job(work, "reference", 10), 4)
        expect(rc == 0, f"the reference on 4 ranks exits 0 ({rc})", log)

        rc, log = train(write_job(work, "elastic", 2), 4)
        expect(rc == 0, f"2 steps on 4 ranks exit 0 ({rc})", log)
        style_dir = os.path.join(work, "elastic", "candy")
        before = folder_digest(style_dir)
        rc, log = train(write_job(work, "elastic", 4), 3)
        expect(rc == 2, f"3 ranks cannot keep 8 images per step: exit 2 ({rc})", log)
        expect("8 images per step (batch_size 2 x 4 rank(s))" in log and
               "3 rank(s) per style cannot keep that (8 is not a multiple of 3)" in log,
               "the refusal names the numbers", log)
        check(folder_digest(style_dir) == before, "the refused launch left the folder as it was")

        for ranks, max_steps, batch, micro in [(2, 4, 4, 2), (2, 6, 4, 2), (1, 8, 8, 4), (2, 10, 4, 2)]:
            rc, log = train(write_job(work, "elastic", max_steps), ranks)
            expect(rc == 0, f"steps to {max_steps} on {ranks} rank(s) exit 0 ({rc})", log)
            said = (f"on {ranks} rank(s) each takes batch_size {batch} in {micro} micro-batch(es) "
                    f"of 2, the same 8 images per step (elastic resume; with the MPI backend, bit for bit")
            expect(said in log, f"the launch on {ranks} rank(s) says what it took", log)
            expect(f"(step {max_steps - 2})" in log and f"training steps {max_steps - 1}.." in log,
                   f"it resumed from step {max_steps - 2}", log)
        with open(os.path.join(style_dir, "settings.json")) as f:
            settings = json.load(f)
        check(settings.get("ranks training the style together") == "2" and
              settings.get("styles.candy.batch_size") == "4" and
              settings.get("styles.candy.micro_batches") == "2" and
              settings.get("styles.candy.batch_size in the job file") == "2" and
              settings.get("images per step (batch_size x ranks)") == "8",
              "settings.json records the last set-up (2 ranks, batch 4 in 2, 8 images per step)"
              + ("" if settings.get("images per step (batch_size x ranks)") == "8" else f": {settings}"))
        same, said = same_tensors(os.path.join(work, "reference", "candy", "model.pt"),
                                os.path.join(style_dir, "model.pt"), 60)
        check(same, f"4 -> 2 -> 2 -> 1 -> 2 ranks equals 4 ranks throughout, bit for bit: {said}")

        job = write_job(work, "elastic", 12)
        settings_path = os.path.join(style_dir, "settings.json")
        with open(settings_path) as f:
            kept = f.read()
        for broken, named in [("[1, 2, 3]", "unreadable settings record (not a JSON object)"),
                              (kept.replace('"ranks training the style together": "2"',
                                            '"ranks training the style together": "abc"'),
                               "'ranks training the style together' is 'abc', not a whole number")]:
            with open(settings_path, "w") as f:
                f.write(broken)
            p = subprocess.run([BINARY, "check", job, "--world", "2"], capture_output=True, text=True)
            expect(p.returncode != 0 and named in p.stdout + p.stderr,
                   f"a broken settings.json is named by check: '{named}'", p.stdout + p.stderr)
        with open(settings_path, "w") as f:
            f.write(kept)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("elastic_resume_test")


if __name__ == "__main__":
    sys.exit(main())
