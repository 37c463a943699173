#!/usr/bin/python3
"""launch/slurm.sbatch under a real Slurm (ctest labels `cluster`, `mpi`; issue 33).

A single-node Slurm cluster (tests/cluster/slurm_cluster.py: munged, slurmctld, slurmd from a
generated slurm.conf) runs the shipped batch script, which starts the ranks with
`srun --mpi=pmix`:

1. `sbatch --wait` with 2 tasks trains; the model equals `mpirun -np 2`'s bit for bit (one
   thread per rank: the script sets OMP_NUM_THREADS from --cpus-per-task).
2. `scancel --signal=TERM` mid-training: every rank finishes its step, the group root writes a
   checkpoint, and the job ends COMPLETED with exit 0 long before its last step.
3. A new `sbatch` of the same job resumes from that checkpoint and finishes.
4. An allocation with fewer tasks than the job's groups need: FAILED at once, naming the
   numbers, nothing written.
5. A time limit with `--signal=TERM@50` (1 minute): the job stops itself with a checkpoint
   before Slurm's limit, COMPLETED and not TIMEOUT.
Skipped (exit 77) where the test cluster cannot run (not root, packages missing).

usage: slurm_test.py STYLEFLEET_BINARY SOURCE_DIR
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reliability"))
from harness import check, check_no_process_left, finish, run_guarded  # noqa: E402
from harness import write_job as write_job_file  # noqa: E402
import slurm_cluster  # noqa: E402

BINARY, SOURCE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
SCRIPT = os.path.join(SOURCE, "launch", "slurm.sbatch")
GUARD_SECONDS = 300  # turns a hang into a failure


def write_job(folder, steps):
    write_job_file(
        os.path.join(folder, "job.yaml"),
        job={"name": "slurmed", "output_dir": f"{folder}/out", "seed": 4},
        data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 64, "loader_threads": 1},
        loss_network={"weights": "random:2"},
        training={"batch_size": 2, "epochs": 0, "max_steps": steps, "log_every_steps": 1,
                  "preview_every_steps": 0},
        checkpoint={"every_steps": 50, "keep": 2},
        distributed={"ranks_per_style": 2},
        monitoring={"listen": "off", "linger_seconds": 0},
        styles=[{"name": "wave", "image": f"{SOURCE}/configs/data/styles/wave.jpg"}])


def sbatch(slurm, folder, log_name, *options, extra=()):
    """Submits the shipped script (2 tasks on the node); returns the job id, or None."""
    cmd = ["sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1",
           f"--chdir={folder}", f"--output={folder}/{log_name}", *options, SCRIPT,
           os.path.join(folder, "job.yaml"), "--no-progress", *extra]
    env = dict(slurm.env, STYLEFLEET_BINARY=BINARY)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=GUARD_SECONDS)
    # With --wait, sbatch exits with the job's code: the job id on stdout says it was accepted.
    job = p.stdout.strip().split(";")[0]
    check(job.isdigit(), f"sbatch {' '.join(options) or '(no options)'} accepted the job" +
          ("" if job.isdigit() else ": " + p.stderr.strip()))
    return job if job.isdigit() else None


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def wait_for_text(path, pattern, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        match = re.search(pattern, read(path))
        if match:
            return match
        time.sleep(0.2)
    return None


def trains_like_mpirun(slurm, work):
    folder, reference = os.path.join(work, "plain"), os.path.join(work, "plain-ref")
    for f in (folder, reference):
        os.makedirs(f)
        write_job(f, 3)
    job = sbatch(slurm, folder, "job.log", "--wait")
    state = slurm.job_field(job, "JobState") if job else None
    check(state == "COMPLETED" and slurm.job_field(job, "ExitCode") == "0:0",
          f"the job trained: {state}, exit {slurm.job_field(job, 'ExitCode') if job else None}" +
          ("" if state == "COMPLETED" else "\n" + read(os.path.join(folder, "job.log"))[-3000:]))
    code, _, out = run_guarded(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2",
                                BINARY, "train", "job.yaml", "--no-progress", "--threads", "1"],
                               reference, GUARD_SECONDS)
    check(code == 0, f"the same job under mpirun -np 2: exit {code}" + ("" if code == 0 else "\n" + out[-2000:]))
    mine, theirs = (os.path.join(f, "out", "wave", "model.pt") for f in (folder, reference))
    check(os.path.exists(mine) and os.path.exists(theirs) and read_bytes(mine) == read_bytes(theirs),
          "srun --mpi=pmix trains the model of mpirun -np 2 bit for bit")


def too_few_tasks(slurm, work):
    """An allocation of 2 tasks for a job whose styles want 4 ranks each: refused at once by
    every rank, naming the numbers; the job FAILED and nothing was written."""
    folder = os.path.join(work, "few")
    os.makedirs(folder)
    write_job(folder, 3)
    job = sbatch(slurm, folder, "job.log", "--wait", extra=("--set", "distributed.ranks_per_style=4"))
    text = read(os.path.join(folder, "job.log"))
    expected = "distributed.ranks_per_style: 4 does not divide the 2 ranks of this launch"
    check(job is not None and slurm.job_field(job, "JobState") == "FAILED" and expected in text,
          f"2 tasks for ranks_per_style 4: {slurm.job_field(job, 'JobState') if job else None}, "
          f"'{expected}'" + ("" if expected in text else "\n" + text[-2000:]))
    check(not os.path.exists(os.path.join(folder, "out")), "nothing was written")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def stop_resume_and_time_limit(slurm, work):
    folder = os.path.join(work, "long")
    os.makedirs(folder)
    write_job(folder, 400)
    log = os.path.join(folder, "first.log")
    job = sbatch(slurm, folder, "first.log")
    stepped = wait_for_text(log, r"\] step [3-9]/400", GUARD_SECONDS)
    check(bool(stepped), "the job is training (step 3 logged)")
    subprocess.run(["scancel", "--signal=TERM", job], env=slurm.env, capture_output=True)
    state = slurm.wait_job(job, GUARD_SECONDS)
    text = read(log)
    stop = re.search(r"stop signal: checkpoint written at step (\d+)", text)
    check(state == "COMPLETED" and slurm.job_field(job, "ExitCode") == "0:0" and stop is not None,
          f"scancel --signal=TERM: checkpoint written, job {state} with exit "
          f"{slurm.job_field(job, 'ExitCode')}" + ("" if stop else "\n" + text[-3000:]))
    stopped_at = int(stop.group(1)) if stop else 0
    check(0 < stopped_at < 400, f"it stopped at step {stopped_at}, not at the end")

    # The same job again, with two more steps: it resumes and finishes.
    job = sbatch(slurm, folder, "second.log", "--wait", extra=("--set", f"training.max_steps={stopped_at + 2}"))
    text = read(os.path.join(folder, "second.log"))
    check(job is not None and slurm.job_field(job, "JobState") == "COMPLETED" and
          f"(step {stopped_at})" in text and "resuming from" in text and f"step {stopped_at + 2}/" in text,
          f"a new sbatch resumed from step {stopped_at} and finished" +
          ("" if "resuming from" in text else "\n" + text[-3000:]))

    # A one-minute limit with TERM 50 s before it: the job stops itself in time.
    started = time.monotonic()
    job = sbatch(slurm, folder, "third.log", "--time=1", "--signal=TERM@50")
    state = slurm.wait_job(job, GUARD_SECONDS)
    took = time.monotonic() - started
    text = read(os.path.join(folder, "third.log"))
    check(state == "COMPLETED" and "stop signal: checkpoint written at step" in text,
          f"--time=1 --signal=TERM@50: the job checkpointed and ended {state} after {took:.0f} s "
          "(not TIMEOUT)" + ("" if state == "COMPLETED" else "\n" + text[-3000:]))


def main():
    why = slurm_cluster.available()
    if why:
        print(f"skipped: {why}")
        return 77
    work = tempfile.mkdtemp(prefix="stylefleet_slurmtest_")
    try:
        with slurm_cluster.SlurmCluster(cpus=2) as slurm:
            trains_like_mpirun(slurm, work)
            too_few_tasks(slurm, work)
            stop_resume_and_time_limit(slurm, work)
        check_no_process_left(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("slurm_test")


if __name__ == "__main__":
    sys.exit(main())
