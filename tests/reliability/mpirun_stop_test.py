#!/usr/bin/python3
"""Stopping the launcher, as a user (Ctrl-C) and a scheduler (SIGTERM) do (label `mpi`).

launch/mpirun.sh starts 2 ranks (2 styles, one group each, a checkpoint every step). Once
both styles have a checkpoint:
  term  SIGTERM to the launcher;
  int   SIGINT to the launcher's whole process group (what Ctrl-C in a terminal does).
Each time every group root must write a checkpoint on the stop signal and the launcher must
exit 0; the same command then resumes.

usage: mpirun_stop_test.py STYLEFLEET_BINARY SOURCE_DIR term|int
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from harness import check, finish, output_within, write_job

BINARY, SOURCE, MODE = sys.argv[1], sys.argv[2], sys.argv[3]


def main():
    work = tempfile.mkdtemp(prefix="stylefleet_mpistop_")
    try:
        job = write_job(
            os.path.join(work, "job.yaml"),
            job={"name": "stop", "output_dir": f"{work}/out", "seed": 3},
            data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 64, "loader_threads": 1},
            training={"batch_size": 1, "epochs": 0, "max_steps": 100000, "log_every_steps": 1,
                      "preview_every_steps": 0},
            checkpoint={"every_steps": 1, "keep": 2},
            styles=[{"image": f"{SOURCE}/configs/data/styles/{s}.jpg"} for s in ("wave", "candy")])
        launch = [os.path.join(SOURCE, "launch/mpirun.sh"), "--np", "2", "--ranks-per-node", "2",
                  "--binary", BINARY, "--", "train", job, "--threads", "1", "--no-progress"]
        p = subprocess.Popen(launch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
        folders = [os.path.join(work, "out", s, "checkpoints") for s in ("wave", "candy")]
        deadline = time.time() + 180
        while time.time() < deadline and p.poll() is None and not all(
                os.path.isdir(d) and os.listdir(d) for d in folders):
            time.sleep(0.2)
        sent = time.time()
        if MODE == "term":
            p.send_signal(signal.SIGTERM)
        else:
            os.killpg(p.pid, signal.SIGINT)
        out = output_within(p, 120)
        seconds = time.time() - sent
        check(p.returncode == 0, f"SIG{MODE.upper()} to the launcher: exit {p.returncode} "
                                 f"after {seconds:.1f} s")
        for style in ("wave", "candy"):
            check(f"[{style}] stop signal: checkpoint written" in out,
                  f"the root of {style}'s group wrote a checkpoint on the stop")
        if p.returncode != 0 or "stop signal: checkpoint written" not in out:
            print(out[-3000:])
        rerun = subprocess.run(launch[:-6] + ["--", "train", job, "--threads", "1", "--no-progress",
                                              "--set", "training.max_steps=1"],
                               capture_output=True, text=True, timeout=300)
        check(rerun.returncode == 0 and "already trained" in rerun.stdout + rerun.stderr,
              f"the same job resumes from those checkpoints ({rerun.returncode})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish(f"mpirun stop ({MODE})")


if __name__ == "__main__":
    sys.exit(main())
