#!/usr/bin/python3
"""Crashes and preemption lose nothing (ctest label `reliability`).

1. SIGKILL at random steps (checkpoints every step; each kill is sent as the chosen step is
   logged, when that step's checkpoint is being written): after every kill the same command
   resumes from the newest checkpoint (never a partial file, never an unreadable one), and
   the run ends bitwise equal to an uninterrupted one.
2. SIGTERM once step 3 is logged: the trainer finishes the step under way, writes a
   checkpoint and exits 0 long before the end; the same command resumes and ends equal to
   an uninterrupted run.
No check depends on how fast or loaded the machine is: the test acts at logged steps, and
its deadlines only turn a hang into a failure.
3. NaN faults (test-only injection): skipped steps never reach the weights; after
   max_bad_steps in a row the style stops with an error and exit code 1 while the job's
   other style trains to the end.

usage: crash_test.py STYLEFLEET_BINARY SOURCE_DIR
"""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import torch

from harness import LineReader, check, finish
from harness import write_job as write_job_file

BINARY, SOURCE = sys.argv[1], sys.argv[2]


def write_job(work, name, steps, styles=("candy",), every=1):
    return write_job_file(
        os.path.join(work, name + ".yaml"),
        job={"name": name, "output_dir": f"{work}/{name}", "seed": 5},
        data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 64, "loader_threads": 1},
        training={"batch_size": 2, "epochs": 0, "max_steps": steps, "learning_rate": 0.01,
                  "log_every_steps": 1, "preview_every_steps": 0, "max_bad_steps": 2},
        checkpoint={"every_steps": every, "keep": 2},
        styles=[{"image": f"{SOURCE}/configs/data/styles/{s}.jpg"} for s in styles])


def command(job, *extra):
    return [BINARY, "train", job, "--no-progress", "--threads", "1", *extra]


def params(model):
    state = torch.load(model)
    return {k: v for k, v in state.items() if not k.startswith("stylefleet.")}


def same_params(a, b):
    pa, pb = params(a), params(b)
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def main():
    work = tempfile.mkdtemp(prefix="stylefleet_crash_")
    rng = random.Random(1234)
    try:
        steps = 30
        reference = write_job(work, "reference", steps)
        r = subprocess.run(command(reference), capture_output=True, text=True, timeout=600)
        check(r.returncode == 0, "uninterrupted reference run")
        ref_model = os.path.join(work, "reference/candy/model.pt")

        # 1. SIGKILL trials. Each kill waits for a known point instead of a wall-clock
        # moment: the log line of a chosen step, which the trainer prints just before it
        # hands that step's checkpoint to the background writer, so the kill lands in or
        # next to a checkpoint write however fast or loaded the machine is. The steps are
        # random (seeded) and leave at least 5 steps after each, so every kill is mid-run.
        job = write_job(work, "killed", steps)
        kill_steps = sorted(rng.sample(range(1, steps - 4), 8))
        kills, resumed_steps, bad_reads = 0, [], 0
        for target in kill_steps:
            p = subprocess.Popen(command(job), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            reader = LineReader(p)
            seen = reader.wait_for(r"\[candy\] step (\d+)/", seconds=300)
            while seen and int(seen.group(1)) < target:
                seen = reader.wait_for(r"\[candy\] step (\d+)/", seconds=300)
            if seen:
                p.send_signal(signal.SIGKILL)
            out = reader.output(seconds=300)
            killed = p.returncode == -signal.SIGKILL
            kills += killed
            if not check(killed, f"kill at step {target}: the run was killed mid-run (exit {p.returncode})"):
                print(out[-2000:])
            resumed_steps += [int(m) for m in re.findall(r"resuming from .* \(step (\d+)\)", out)]
            bad_reads += out.count("ignoring unreadable checkpoint")
            folder = os.path.join(work, "killed/candy/checkpoints")
            listing = os.listdir(folder) if os.path.isdir(folder) else []
            check(all(n.startswith("step-") or n.startswith(".") for n in listing),
                  f"after the kill at step {target}: only complete checkpoints and hidden temporaries: {sorted(listing)}")
        r = subprocess.run(command(job), capture_output=True, text=True, timeout=600)
        out = r.stdout + r.stderr
        resumed_steps += [int(m) for m in re.findall(r"resuming from .* \(step (\d+)\)", out)]
        bad_reads += out.count("ignoring unreadable checkpoint")
        check(r.returncode == 0, f"after {kills} kills the same command finished the run (exit {r.returncode})")
        check(kills == len(kill_steps), f"{kills} of {len(kill_steps)} SIGKILL trials landed mid-run (steps {kill_steps})")
        check(bad_reads == 0, f"no unreadable checkpoint was ever met ({bad_reads})")
        check(resumed_steps == sorted(resumed_steps),
              f"each restart resumed at or after the last: {resumed_steps}")
        check(os.path.exists(os.path.join(work, "killed/candy/model.pt")), "the killed run finished")
        check(same_params(ref_model, os.path.join(work, "killed/candy/model.pt")),
              "after the kills the model equals the uninterrupted run bit for bit")

        # 2. SIGTERM at a known point (step 3 logged). The trainer ends the step it is in:
        # it stops long before the end (a run that ignored the signal would train to step
        # 30), and the hang guard alone bounds the wait, so no speed is asserted.
        job = write_job(work, "termed", steps, every=100)
        p = subprocess.Popen(command(job), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        reader = LineReader(p)
        at = reader.wait_for(r"\[candy\] step 3/", seconds=300)
        check(at is not None, "SIGTERM: the run reached step 3")
        sent = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out = reader.output(seconds=300)
        print(f"figure: exited {time.monotonic() - sent:.1f} s after SIGTERM", flush=True)
        check(p.returncode == 0, f"SIGTERM: exit code 0 (got {p.returncode})")
        stop = re.search(r"stop signal: checkpoint written at step (\d+)", out)
        check(stop is not None, "SIGTERM: a checkpoint was written on the way out")
        check(stop is not None and 3 <= int(stop.group(1)) < steps,
              f"SIGTERM: stopped in the step under way, not at the end: step {stop and stop.group(1)} of {steps}")
        r = subprocess.run(command(job), capture_output=True, text=True, timeout=600)
        check(r.returncode == 0 and "resuming from" in r.stdout + r.stderr, "SIGTERM: the same command resumed")
        check(same_params(ref_model, os.path.join(work, "termed/candy/model.pt")),
              "SIGTERM: the resumed run equals the uninterrupted run bit for bit")

        # 3. NaN faults.
        job = write_job(work, "faults", 6, styles=("candy", "mosaic"))
        r = subprocess.run(command(job, "--test-inject-nan", "candy:3"), capture_output=True, text=True)
        check(r.returncode == 0, f"one NaN step is skipped and training goes on (exit {r.returncode})")
        model = params(os.path.join(work, "faults/candy/model.pt"))
        check(all(torch.isfinite(v).all() for v in model.values()), "no NaN reached the weights")
        shutil.rmtree(os.path.join(work, "faults"))
        r = subprocess.run(command(job, "--test-inject-nan", "candy:3", "candy:4"), capture_output=True, text=True)
        log = r.stdout + r.stderr
        check(r.returncode == 1, f"two NaN steps in a row (max_bad_steps 2): exit code 1 (got {r.returncode})")
        check("style 'candy': 2 steps in a row (up to step 4) had a NaN or infinite loss" in log,
              "the error names the style and the steps")
        check(os.path.exists(os.path.join(work, "faults/candy/checkpoints/step-00000002.pt")),
              "the stopped style kept its last good checkpoint")
        check(not os.path.exists(os.path.join(work, "faults/candy/model.pt")), "the stopped style wrote no final model")
        check(os.path.exists(os.path.join(work, "faults/mosaic/model.pt")), "the other style trained to the end")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("crash and fault tests")


if __name__ == "__main__":
    sys.exit(main())
