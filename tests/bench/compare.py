#!/usr/bin/python3
"""Runs `stylefleet bench` and the PyTorch reference (reference_train.py)
alternately, several rounds, on the same synthetic workload, and prints the
medians and the ratio per round. Alternating makes the comparison hold on a
noisy shared machine: a slow spell hits both sides of a pair.

  /usr/bin/python3 tests/bench/compare.py --stylefleet build/stylefleet --rounds 3

Prints a Markdown table (for the README) and writes every raw result as JSON
with --json.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# What stylefleet's main() applies itself with mallopt (see src/cli/main.cc):
# the PyTorch reference gets it through glibc's environment variable.
MALLOC_TUNING = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"


def run_json(cmd, env=None):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if proc.returncode != 0:
        sys.exit("failed (%d): %s\n%s" % (proc.returncode, " ".join(cmd), proc.stderr[-2000:]))
    return json.loads(proc.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stylefleet", default="build/stylefleet")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="timed steps per run (median taken)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--no-bf16", action="store_true", help="fp32 only")
    p.add_argument("--mpi", action="store_true",
                   help="also: stylefleet under mpirun -np 2 with 1 thread each vs 1 process with 1 thread")
    p.add_argument("--json", help="write all raw results here")
    args = p.parse_args()

    common = ["--image-size", str(args.image_size), "--batch", str(args.batch),
              "--steps", str(args.steps), "--warmup", str(args.warmup)]

    def sf(precision, threads=args.threads, mpi=False):
        cmd = [args.stylefleet, "bench", "--precision", precision, "--styles-at-once", "1",
               "--stylize-sizes", "0", "--threads", str(threads), "--no-progress"] + common
        if mpi:
            cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "core",
                   "-np", "2"] + cmd
        d = run_json(cmd)
        t = d["train_synthetic"][0]
        return t["images_per_second_per_style"], d

    def ref(bf16, tuned):
        env = dict(os.environ)
        env.pop("GLIBC_TUNABLES", None)
        if tuned:
            env["GLIBC_TUNABLES"] = MALLOC_TUNING
        cmd = ["/usr/bin/python3", os.path.join(HERE, "reference_train.py"),
               "--threads", str(args.threads)] + common
        if bf16:
            cmd.append("--bf16")
        d = run_json(cmd, env)
        return d["images_per_second"], d

    variants = [
        ("reference fp32", lambda: ref(False, False)),
        ("reference fp32, malloc tuned", lambda: ref(False, True)),
        ("stylefleet fp32", lambda: sf("fp32")),
    ]
    if not args.no_bf16:
        variants += [("reference bf16 autocast, malloc tuned", lambda: ref(True, True)),
                     ("stylefleet bf16", lambda: sf("bf16"))]
    if args.mpi:
        variants += [("stylefleet fp32, 1 process x 1 thread", lambda: sf("fp32", threads=1)),
                     ("stylefleet fp32, mpirun -np 2 x 1 thread", lambda: sf("fp32", threads=1, mpi=True))]

    rates = {name: [] for name, _ in variants}
    raw = []
    machine = None
    for r in range(args.rounds):
        for name, fn in variants:
            rate, doc = fn()
            rates[name].append(rate)
            raw.append({"round": r + 1, "variant": name, "images_per_second": rate, "result": doc})
            if machine is None and "machine" in doc:
                machine = doc["machine"]
            print("round %d/%d  %-42s %.3f images/s" % (r + 1, args.rounds, name, rate),
                  file=sys.stderr, flush=True)

    base = rates["reference fp32"]
    print("Training images/s, %d px, batch %d, %d thread(s), synthetic images; %s; CPU: %s; "
          "%d rounds, alternating; %s" % (args.image_size, args.batch, args.threads,
                                          datetime.date.today().isoformat(),
                                          machine["cpu"] if machine else platform.processor(),
                                          args.rounds, "system BLAS " + (machine or {}).get("system_blas", "?")))
    print()
    print("| variant | median images/s | per round | ratio to reference fp32 (median of per-round ratios) |")
    print("|---|---|---|---|")
    for name, _ in variants:
        values = rates[name]
        ratios = [v / b for v, b in zip(values, base)]
        print("| %s | %.3f | %s | %.2fx |" % (name, statistics.median(values),
                                            " ".join("%.3f" % v for v in values),
                                            statistics.median(ratios)))
    if args.mpi:
        one = rates["stylefleet fp32, 1 process x 1 thread"]
        two = rates["stylefleet fp32, mpirun -np 2 x 1 thread"]
        print()
        print("mpirun -np 2 (1 thread each) over 1 process (1 thread): %.2fx (median of per-round ratios)"
              % statistics.median([b / a for a, b in zip(one, two)]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
