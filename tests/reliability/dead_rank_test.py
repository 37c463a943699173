#!/usr/bin/python3
"""Stalled and dead ranks (ctest label `reliability`).

Under `mpirun -np 2`, one style trained by both ranks: once a checkpoint exists, rank 1 is
frozen (SIGSTOP) for 6 s: rank 0 must warn after distributed.stall_warn_seconds (3 s) and
carry on when rank 1 continues. Then rank 1 is killed with SIGKILL. The launch must exit non-zero within distributed.timeout_seconds (20 s
here), the newest checkpoint must load (the rerun resumes from it), and the rerun finishes.

usage: dead_rank_test.py STYLEFLEET_BINARY SOURCE_DIR
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from harness import check, failures, finish

BINARY, SOURCE = sys.argv[1], sys.argv[2]


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [(int(line.split(None, 1)[0]), line.split(None, 1)[1]) for line in out.splitlines() if line.strip()]


def main():
    work = tempfile.mkdtemp(prefix="stylefleet_deadrank_")
    try:
        job = os.path.join(work, "job.yaml")
        with open(job, "w") as f:
            f.write(f"""job: {{name: dead, output_dir: {work}/out, seed: 3}}
data: {{content_dir: {SOURCE}/configs/data/content, image_size: 64, loader_threads: 1}}
loss_network: {{weights: 'random:1'}}
training: {{batch_size: 2, epochs: 0, max_steps: 400, log_every_steps: 1, preview_every_steps: 0}}
checkpoint: {{every_steps: 2, keep: 2}}
distributed: {{stall_warn_seconds: 3, timeout_seconds: 20}}
monitoring: {{listen: 'off'}}
styles:
  - image: {SOURCE}/configs/data/styles/wave.jpg
""")
        launch = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2",
                  BINARY, "train", job, "--threads", "1"]
        p = subprocess.Popen(launch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        checkpoints = os.path.join(work, "out/wave/checkpoints")
        deadline = time.time() + 120
        while time.time() < deadline and not (os.path.isdir(checkpoints) and any(
                n.startswith("step-") for n in os.listdir(checkpoints))):
            time.sleep(0.2)
        ranks = [pid for pid, args in children(p.pid) if "stylefleet" in args]
        check(len(ranks) == 2, f"two ranks running: {ranks}")
        # A stall: rank 1 frozen for 6 s (warning after 3 s, timeout 20 s), then resumed.
        os.kill(ranks[-1], signal.SIGSTOP)
        time.sleep(6)
        os.kill(ranks[-1], signal.SIGCONT)
        time.sleep(2)
        killed = time.time()
        os.kill(ranks[-1], signal.SIGKILL)
        try:
            out, _ = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        took = time.time() - killed
        check("a peer is slow, stalled or dead" in out, "the stall of rank 1 was reported by rank 0")
        check(p.returncode != 0, f"the launch exited non-zero ({p.returncode})")
        check(took < 20, f"the launch ended {took:.1f} s after the kill (timeout 20 s)")
        rerun = subprocess.run(launch[:-2] + ["--threads", "1", "--set", "training.max_steps=12"],
                               capture_output=True, text=True, timeout=600)
        log = rerun.stdout + rerun.stderr
        check(rerun.returncode == 0, f"the rerun exited 0 ({rerun.returncode})")
        check("resuming from" in log and "ignoring unreadable" not in log,
              "the rerun resumed from the newest checkpoint")
        if failures:
            print(out[-3000:])
            print(log[-3000:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("dead rank test")


if __name__ == "__main__":
    sys.exit(main())
