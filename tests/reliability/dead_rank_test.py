#!/usr/bin/python3
"""Stalled and dead ranks (ctest label `reliability`).

Under `mpirun -np 2`, one style trained by both ranks: once a checkpoint exists, one rank is
frozen (SIGSTOP) until its peer warns (after distributed.stall_warn_seconds, 3 s), naming it;
the launch carries on (a step is logged) once the frozen rank continues. Then that rank is
killed with SIGKILL. The launch must end by itself, non-zero, through the death and not the
peer's collective timeout (distributed.timeout_seconds is 600 s here, past the test's hang
guard), the newest checkpoint must load (the rerun resumes from it), and the rerun finishes.
Then preemption under mpirun: SIGTERM to every rank (what Slurm sends) mid-training makes
both ranks finish the step, write one checkpoint and exit 0 long before the end; the same
command resumes from it. Last, a rank frozen past distributed.timeout_seconds (6 s): the
launch ends by itself, non-zero, and the message names the rank that gave up, its host and
the timeout. The test acts at logged points, and its deadlines only turn a hang into a
failure: nothing depends on how fast or loaded the machine is.

usage: dead_rank_test.py STYLEFLEET_BINARY SOURCE_DIR
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from harness import LineReader, check, failures, finish, write_job

BINARY, SOURCE = sys.argv[1], sys.argv[2]


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [(int(line.split(None, 1)[0]), line.split(None, 1)[1]) for line in out.splitlines() if line.strip()]


def start_until_checkpoint(launch, checkpoints):
    """Starts the launch; returns it, a reader of its output and its rank pids once a
    checkpoint exists (a deadline of 300 s only guards against a hang)."""
    p = subprocess.Popen(launch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reader = LineReader(p)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and p.poll() is None and not (os.path.isdir(checkpoints) and any(
            n.startswith("step-") for n in os.listdir(checkpoints))):
        time.sleep(0.2)
    return p, reader, [pid for pid, args in children(p.pid) if "stylefleet" in args]


def main():
    work = tempfile.mkdtemp(prefix="stylefleet_deadrank_")
    try:
        job = write_job(
            os.path.join(work, "job.yaml"),
            job={"name": "dead", "output_dir": f"{work}/out", "seed": 3},
            data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 64, "loader_threads": 1},
            training={"batch_size": 2, "epochs": 0, "max_steps": 400, "log_every_steps": 1,
                      "preview_every_steps": 0},
            checkpoint={"every_steps": 2, "keep": 2},
            distributed={"stall_warn_seconds": 3, "timeout_seconds": 600},
            styles=[{"image": f"{SOURCE}/configs/data/styles/wave.jpg"}])
        launch = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2",
                  BINARY, "train", job, "--threads", "1"]
        checkpoints = os.path.join(work, "out/wave/checkpoints")
        p, reader, ranks = start_until_checkpoint(launch, checkpoints)
        check(len(ranks) == 2, f"two ranks running: {ranks}")
        with open(f"/proc/{ranks[-1]}/environ", "rb") as f:
            env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
        frozen = int(env.get(b"OMPI_COMM_WORLD_RANK", b"-1"))
        # A stall: one rank frozen until its peer has warned (after 3 s), then resumed.
        os.kill(ranks[-1], signal.SIGSTOP)
        warned = reader.wait_for(r"stalled or dead", seconds=120)
        os.kill(ranks[-1], signal.SIGCONT)
        carried_on = warned and reader.wait_for(r"\] step \d+/", seconds=120)
        os.kill(ranks[-1], signal.SIGKILL)
        out = reader.output(seconds=300)
        check("a peer is slow, stalled or dead" in out, "the stall was reported by the other rank")
        check(re.search(rf"rank {frozen} \(host [^)]+\) has not reached it", out) is not None,
              f"the warning names the frozen rank {frozen}: " +
              next((l for l in out.splitlines() if "stalled or dead" in l), "(no warning line)"))
        check(bool(carried_on), "training carried on (a step logged) once the frozen rank continued")
        check(reader.ended and p.returncode != 0,
              f"the launch ended by itself after the kill, non-zero ({p.returncode})")
        check("did not complete within" not in out,
              "the death ended the launch, not the peer's collective timeout (600 s)")
        rerun = subprocess.run(launch[:-2] + ["--threads", "1", "--set", "training.max_steps=12"],
                               capture_output=True, text=True, timeout=600)
        log = rerun.stdout + rerun.stderr
        check(rerun.returncode == 0, f"the rerun exited 0 ({rerun.returncode})")
        check("resuming from" in log and "ignoring unreadable" not in log,
              "the rerun resumed from the newest checkpoint")

        # Preemption: SIGTERM to both ranks once training is under way again.
        shutil.rmtree(os.path.join(work, "out"))
        p, reader, ranks = start_until_checkpoint(launch, checkpoints)
        check(len(ranks) == 2, f"two ranks running for the preemption: {ranks}")
        for pid in ranks:
            os.kill(pid, signal.SIGTERM)
        term_out = reader.output(seconds=300)
        check(reader.ended and p.returncode == 0, f"SIGTERM under mpirun: the launch exited 0 ({p.returncode})")
        check("stop signal: checkpoint written at step" in term_out,
              "SIGTERM under mpirun: a checkpoint was written at the stop")
        stopped_at = max(int(n[5:13]) for n in os.listdir(checkpoints) if n.startswith("step-"))
        check(stopped_at < 400, f"SIGTERM under mpirun: stopped at step {stopped_at}, not at the end (400)")
        resume = subprocess.run(launch[:-2] + ["--threads", "1", "--set", f"training.max_steps={stopped_at + 2}"],
                                capture_output=True, text=True, timeout=600)
        resume_log = resume.stdout + resume.stderr
        check(resume.returncode == 0 and f"(step {stopped_at})" in resume_log,
              f"the same command resumed from step {stopped_at} ({resume.returncode})")
        # A rank stalled past distributed.timeout_seconds: its peer gives up and the whole
        # launch ends non-zero, naming the rank that gave up and its host.
        shutil.rmtree(os.path.join(work, "out"))
        short = launch[:-2] + ["--threads", "1", "--set", "distributed.timeout_seconds=6",
                               "--set", "distributed.stall_warn_seconds=2"]
        p, reader, ranks = start_until_checkpoint(short, checkpoints)
        check(len(ranks) == 2, f"two ranks running for the timeout: {ranks}")
        os.kill(ranks[-1], signal.SIGSTOP)
        timeout_out = reader.output(seconds=300)
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(ranks[-1], sig)
            except ProcessLookupError:
                pass
        host = socket.gethostname()
        check(reader.ended and p.returncode != 0,
              f"timeout: the launch ended by itself, non-zero ({p.returncode}), after the stall (timeout 6 s)")
        check("did not complete within 6 s (distributed.timeout_seconds)" in timeout_out
              and f" on {host}: " in timeout_out,
              "timeout: the message names the rank, its host and the timeout: " +
              next((l for l in timeout_out.splitlines() if "did not complete" in l), "(no such line)"))
        if failures:
            print(timeout_out[-3000:])
            print(out[-3000:])
            print(log[-3000:])
            print(term_out[-3000:])
            print(resume_log[-3000:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("dead rank test")


if __name__ == "__main__":
    sys.exit(main())
