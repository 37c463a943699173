#!/usr/bin/python3
"""A conditional and an arbitrary-style network under `mpirun -np 2` (ctest labels
`reliability;mpi`).

Three styles in one network (job.network: conditional, then arbitrary), batch 2 per rank:
  1. both ranks train the one network data-parallel (ranks_per_style 1 does not split it);
  2. its model equals, tensor for tensor, one process training batch 4 in 2 micro-batches
     (each image keeps its style wherever it trains; an arbitrary-style network's predictor
     trains with it);
  3. each style has its own metrics.jsonl, and `info` lists the three styles.

usage: conditional_mpi_test.py STYLEFLEET_BINARY SOURCE_DIR
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check, finish, run, same_tensors  # noqa: E402

BINARY, SOURCE = sys.argv[1], sys.argv[2]
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2"]
STYLES = ["candy", "mosaic", "wave"]


def write_job(work, output, batch, micro_batches, network):
    return harness.write_job(
        os.path.join(work, f"{output}.yaml"),
        job={"name": "cmpi", "output_dir": os.path.join(work, output), "seed": 2, "network": network},
        data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 64, "loader_threads": 1},
        loss_network={"weights": "random:4"},
        training={"batch_size": batch, "micro_batches": micro_batches, "epochs": 0, "max_steps": 3,
                  "log_every_steps": 1, "preview_every_steps": 0},
        checkpoint={"every_steps": 3, "keep": 1},
        distributed={"ranks_per_style": 1},
        styles=[{"name": s, "image": f"{SOURCE}/configs/data/styles/{s}.jpg"} for s in STYLES])


def check_network(work, network, tensors, info_says):
    job = write_job(work, f"{network}-ranks", 2, 1, network)
    rc, log = run(MPIRUN + [BINARY, "train", job, "--no-progress", "--threads", "1"])
    check(rc == 0, f"mpirun train of a {network} job exits 0 ({rc}): {log[-800:]}")
    check("data-parallel over 2 ranks" in log, f"both ranks train the one {network} network")
    rc, log1 = run([BINARY, "train", write_job(work, f"{network}-single", 4, 2, network),
                    "--no-progress", "--threads", "1"])
    check(rc == 0, f"one process with 2 micro-batches exits 0 ({rc}): {log1[-800:]}")
    same, said = same_tensors(os.path.join(work, f"{network}-ranks", network, "model.pt"),
                              os.path.join(work, f"{network}-single", network, "model.pt"), tensors)
    check(same, f"{network}: 2 ranks = 1 process with 2 micro-batches, bit for bit: {said}")
    for style in STYLES:
        path = os.path.join(work, f"{network}-ranks", style, "metrics.jsonl")
        check(os.path.isfile(path) and os.path.getsize(path) > 0, f"{style} has its own metrics.jsonl")
    rc, info = run([BINARY, "info", os.path.join(work, f"{network}-ranks", network)])
    check(rc == 0 and all(said in info for said in info_says), f"info describes it: {info}")


def main():
    work = tempfile.mkdtemp(prefix="stylefleet_conditional_mpi_")
    try:
        check_network(work, "conditional", 60, ["network: conditional, 3 styles", "2: wave"])
        # No norm parameters (30 fewer); the predictor's 4.
        check_network(work, "arbitrary", 36, ["network: arbitrary", "trained on 3 styles: candy, mosaic, wave"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("conditional_mpi_test")


if __name__ == "__main__":
    sys.exit(main())
