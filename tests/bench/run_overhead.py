#!/usr/bin/python3
"""Is a whole `stylefleet train` run as fast as its steps? Runs a 6-step job
(256 px, batch 4, 24 of the shipped photos, a checkpoint and a preview at
steps 3 and 6) and `stylefleet bench` with the same size and batch,
alternately, several rounds, and prints the medians of:

- start-up: process start to the start of step 1 (loading, style Grams, first batch);
- the first step and the other steps (from the run's --trace);
- the end: the last step's end to the process's exit (the last preview and
  checkpoint, the model, the final images, exit);
- the whole process against 6 x the bench's step time.

  /usr/bin/python3 tests/bench/run_overhead.py --stylefleet build/stylefleet --rounds 3
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "reliability"))
from harness import write_job  # noqa: E402 (the tests' one job-file writer)



def train_once(binary, work, args, round_index):
    out = os.path.join(work, "out%d" % round_index)
    job = os.path.join(work, "job.yaml")
    write_job(job, job={"name": "overhead", "output_dir": out, "seed": 1},
              data={"content_dir": os.path.join(work, "photos"), "image_size": args.image_size},
              loss_network={"weights": "random:7"},
              training={"batch_size": args.batch, "epochs": 0, "max_steps": args.steps,
                        "log_every_steps": 1, "preview_every_steps": 3},
              checkpoint={"every_steps": 3},
              monitoring={"listen": "127.0.0.1:%d" % args.port, "linger_seconds": 0},
              styles=[{"image": os.path.join(REPO, "configs/data/styles/candy.jpg")}])
    trace = os.path.join(work, "trace.json")
    start = time.monotonic()
    first_step_line = None
    proc = subprocess.Popen([binary, "train", job, "--trace", trace, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = []
    for line in proc.stdout:
        log.append(line)
        if first_step_line is None and "] training steps" in line:
            first_step_line = time.monotonic() - start
    proc.wait()
    whole = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit("train failed (%d):\n%s" % (proc.returncode, "".join(log[-30:])))
    events = [e for e in json.load(open(trace))["traceEvents"] if e.get("ph") == "X"]
    # Steps begin with their data phase and end with the optimizer's.
    begins = [e["ts"] / 1e6 for e in events if e["name"] == "data"]
    ends = [(e["ts"] + e["dur"]) / 1e6 for e in events if e["name"] == "optimizer"]
    steps = [b - a for a, b in zip(begins, ends)]
    # The trace's clock starts at the trainer; the log line "training steps"
    # comes just before step 1's data phase, which places it on the process clock.
    offset = first_step_line - begins[0]
    return {"whole_seconds": whole,
            "startup_seconds": first_step_line,
            "first_step_seconds": steps[0],
            "other_steps_seconds": statistics.median(steps[1:]),
            "steps_sum_seconds": sum(steps),
            "between_steps_seconds": sum(b - a for a, b in zip(ends[:-1], begins[1:])),
            "end_seconds": whole - (ends[-1] + offset)}


def bench_once(binary, args):
    cmd = [binary, "bench", "--image-size", str(args.image_size), "--batch", str(args.batch),
           "--warmup", "1", "--steps", "3", "--precision", args.precision, "--styles-at-once", "1",
           "--stylize-sizes", "0", "--no-machine", "--no-progress"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit("bench failed:\n" + proc.stderr[-2000:])
    return json.loads(proc.stdout)["train_synthetic"][0]["step_seconds_median"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stylefleet", default="build/stylefleet")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--photos", type=int, default=24)
    p.add_argument("--precision", default="fp32", help="the bench's; the job trains in its default")
    p.add_argument("--port", type=int, default=9461, help="the run's metrics port")
    p.add_argument("--bench", help="the binary whose bench gives the step time (default: --stylefleet; "
                   "for a release without `bench --no-machine`)")
    args = p.parse_args()
    binary = os.path.abspath(args.stylefleet)
    work = tempfile.mkdtemp(prefix="stylefleet-overhead-")
    try:
        os.makedirs(os.path.join(work, "photos"))
        source = os.path.join(REPO, "configs/data/content")
        for name in sorted(os.listdir(source))[:args.photos]:
            shutil.copy(os.path.join(source, name), os.path.join(work, "photos"))
        runs, benches = [], []
        for r in range(args.rounds):
            runs.append(train_once(binary, work, args, r))
            benches.append(bench_once(os.path.abspath(args.bench or binary), args))
            print("round %d/%d: whole run %.2f s, bench step %.3f s" %
                  (r + 1, args.rounds, runs[-1]["whole_seconds"], benches[-1]), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(key):
        return statistics.median(r[key] for r in runs)

    step = statistics.median(benches)
    print("Whole `train` run of %d steps, %d px, batch %d, %d photos (checkpoint and preview at "
          "steps 3 and %d); medians of %d rounds alternating with `bench`:" %
          (args.steps, args.image_size, args.batch, args.photos, args.steps, args.rounds))
    print()
    print("| | seconds |")
    print("|---|---|")
    print("| start-up: process start to step 1 (loading, style Grams, first batch) | %.2f |" %
          med("startup_seconds"))
    print("| first step (oneDNN primitives built, memory first touched) | %.2f |" % med("first_step_seconds"))
    print("| each later step (median) | %.2f |" % med("other_steps_seconds"))
    print("| between steps, all together (previews, checkpoint snapshots, records) | %.2f |" %
          med("between_steps_seconds"))
    print("| end: last step to exit (last preview and checkpoint, model, final images) | %.2f |" %
          med("end_seconds"))
    print("| **whole process** | **%.2f** |" % med("whole_seconds"))
    print("| %d x the bench's step (%.3f s) | %.2f |" % (args.steps, step, args.steps * step))
    print()
    print("Whole process / (%d x bench step) = %.2f (median of per-round ratios)" %
          (args.steps, statistics.median(r["whole_seconds"] / (args.steps * b)
                                         for r, b in zip(runs, benches))))


if __name__ == "__main__":
    main()
