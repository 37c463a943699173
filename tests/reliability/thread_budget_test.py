#!/usr/bin/python3
"""A rank's results do not depend on whether the launcher bound it to cores (ctest label `reliability`).

The BLAS library that LibTorch calls for matrix products (Debian's OpenBLAS) keeps a thread pool
of its own, sized by the CPUs the process may run on. stylefleet sets it from the rank's thread
budget (`--threads`), so the same job trained

  1. unbound (every core of the machine allowed), and
  2. bound to one core (`taskset -c 0`, what `mpirun` does to a rank),

with the same `--threads` ends with the same model, bit for bit, and the log says what the BLAS
pool was set to. Without that, run 1 multiplies its Gram matrices on as many OpenBLAS threads as
there are cores and run 2 on one, and their parameters drift apart (after 2 steps of this job, most
tensors of the model differed on an AMD Zen 5 with 2 cores).

usage: thread_budget_test.py STYLEFLEET_BINARY SOURCE_DIR   (exit 77: skipped, one CPU only)
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, finish, run, same_tensors  # noqa: E402
from harness import write_job as write_job_file  # noqa: E402

BINARY, SOURCE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
STYLES = ["candy", "mosaic", "wave"]


def write_job(work, output):
    return write_job_file(
        os.path.join(work, f"{output}.yaml"),
        job={"name": "budget", "output_dir": os.path.join(work, output), "seed": 2,
             "network": "conditional"},
        data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 64, "loader_threads": 1},
        loss_network={"weights": "random:4"},
        training={"batch_size": 4, "epochs": 0, "max_steps": 3, "log_every_steps": 1,
                  "preview_every_steps": 0},
        checkpoint={"every_steps": 3, "keep": 1},
        styles=[{"name": s, "image": f"{SOURCE}/configs/data/styles/{s}.jpg"} for s in STYLES])


def main():
    cpus = len(os.sched_getaffinity(0))
    if cpus < 2:
        print(f"thread_budget_test skipped: this process may use {cpus} CPU, so unbound and bound "
              "runs cannot differ here")
        return 77
    blas = subprocess.run(["bash", "-c", "readlink -f /etc/alternatives/libblas.so.3-$(uname -m)-linux-gnu"],
                          capture_output=True, text=True).stdout.strip()
    work = tempfile.mkdtemp(prefix="stylefleet_thread_budget_")
    try:
        for threads in ("1", "2"):
            models = []
            for name, prefix in ((f"unbound{threads}", []), (f"bound{threads}", ["taskset", "-c", "0"])):
                rc, log = run(prefix + [BINARY, "train", write_job(work, name), "--no-progress",
                                        "--threads", threads])
                check(rc == 0, f"{name}: train --threads {threads} exits 0 ({rc}): {log[-1500:]}")
                if "openblas" in blas:
                    want = f"(OpenBLAS: {threads} thread{'s' if threads != '1' else ''})"
                    check(want in log, f"{name}: the log says the BLAS pool was set: {want}")
                models.append(os.path.join(work, name, "conditional", "model.pt"))
            same, said = same_tensors(*models, 60)
            check(same, f"--threads {threads}: unbound ({cpus} CPUs) = bound to one core, bit for "
                           f"bit: {said}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("thread_budget_test")


if __name__ == "__main__":
    sys.exit(main())
