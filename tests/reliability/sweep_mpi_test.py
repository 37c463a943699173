#!/usr/bin/python3
"""A sweep under `mpirun -np 2` (ctest labels `reliability;mpi`).

One style swept over two style weights:
  1. ranks_per_style 1: two groups of one rank; each run trains on its own rank (the log's
     rank prefix says which), each ends with a model and its swept values in stylefleet.json;
  2. ranks_per_style 2: one group trains both runs data-parallel, together in one pass
     (styles_at_once 0), and a second launch finds both finished and trains nothing again;
  3. `check --world 2` prints the same placement as training used.

usage: sweep_mpi_test.py STYLEFLEET_BINARY SOURCE_DIR
"""
import json
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, finish, run  # noqa: E402
from harness import write_job as write_job_file  # noqa: E402

BINARY, SOURCE = sys.argv[1], sys.argv[2]
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2"]
RUNS = ["s/style_weight=10", "s/style_weight=1000"]


def write_job(work, output, ranks_per_style):
    return write_job_file(
        os.path.join(work, f"job{ranks_per_style}.yaml"),
        job={"name": "swmpi", "output_dir": output, "seed": 2},
        data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 64, "loader_threads": 1},
        loss_network={"weights": "random:4"},
        training={"batch_size": 1, "epochs": 0, "max_steps": 2, "log_every_steps": 1,
                  "preview_every_steps": 0},
        checkpoint={"every_steps": 2, "keep": 1},
        distributed={"ranks_per_style": ranks_per_style},
        sweep={"grid": {"style_weight": [10, 1000]}},
        styles=[{"name": "s", "image": f"{SOURCE}/configs/data/styles/candy.jpg"}])


def main():
    work = tempfile.mkdtemp(prefix="stylefleet_sweep_mpi_")
    try:
        # 1. One run per rank.
        out1 = os.path.join(work, "out1")
        job = write_job(work, out1, 1)
        rc, plan = run([BINARY, "check", job, "--world", "2"])
        check(rc == 0 and "group 0 (ranks 0): s/style_weight=10 (" in plan
              and "group 1 (ranks 1): s/style_weight=1000 (" in plan,
              f"check --world 2 puts one run on each rank ({rc}): {plan[-600:]}")
        rc, log = run(MPIRUN + [BINARY, "train", job, "--no-progress", "--threads", "1"])
        check(rc == 0, f"mpirun train with ranks_per_style 1 exits 0 ({rc}): {log[-800:]}")
        for rank, name in enumerate(RUNS):
            check(re.search(rf"\[rank {rank}\].*\[{re.escape(name)}\] done: 2 steps", log) is not None,
                  f"rank {rank} trained {name}")
            folder = os.path.join(out1, name)
            check(os.path.isfile(os.path.join(folder, "model.pt")), f"{name} wrote model.pt")
            with open(os.path.join(folder, "stylefleet.json")) as f:
                owner = json.load(f)
            check(owner.get("sweep") == "s" and owner.get("swept") == [["style_weight", name.split("=")[1]]],
                  f"{name}: stylefleet.json records the sweep: {owner}")

        # 2. Both runs on both ranks, in one pass; a relaunch trains nothing again.
        out2 = os.path.join(work, "out2")
        job = write_job(work, out2, 2)
        rc, plan = run([BINARY, "check", job, "--world", "2"])
        check(rc == 0 and "s/style_weight=10 + s/style_weight=1000 (together on the same batches, batch 1 x 2 = 2)" in plan,
              f"check --world 2 trains both runs together on both ranks: {plan[-600:]}")
        rc, log = run(MPIRUN + [BINARY, "train", job, "--no-progress", "--threads", "1"])
        check(rc == 0, f"mpirun train with ranks_per_style 2 exits 0 ({rc}): {log[-800:]}")
        for name in RUNS:
            check(f"[{name}] data-parallel over 2 ranks" in log, f"{name} trained data-parallel on 2 ranks")
            check(f"[{name}] training steps 1..2 (16 per epoch), together with 1 other style(s)" in log,
                  f"{name} trained together with the other run")
        rc, log = run(MPIRUN + [BINARY, "train", job, "--no-progress", "--threads", "1"])
        check(rc == 0 and log.count("already trained (2 steps)") == 2,
              f"a relaunch finds both runs finished ({rc}): {log[-600:]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("sweep_mpi_test")


if __name__ == "__main__":
    sys.exit(main())
