#!/usr/bin/python3
"""The metrics endpoint under load (ctest label `reliability`).

Trains a job twice on loopback, each until SIGTERM ends it after its window (so the window sees
training however fast the machine is): once quietly for 10 s, once while `wrk` hammers /metrics
from a second process (a 5 s warm-up, then two windows of 10 s). Checks: every wrk response is a 200 (no socket errors, no non-2xx),
sampled responses are complete exposition documents, other paths get 404, training throughput
keeps at least 30% of the quiet run's (wrk competes for the same 2 cores), and the trainer's
memory does not grow with the requests served. Both windows start once 10 steps are recorded:
training grows its heap by hundreds of MiB in its first steps, and how many of them a window held
depended on the machine's load.

Memory under load: each serving thread's first scrapes give it a glibc malloc arena, a growth
bounded by the number of arenas, not by the requests (47 to 72 MiB seen on 2 CPUs, some of it
still arriving after a 5 s warm-up: 8.1 and 30.0 MiB in the next two windows). Both runs therefore
train with MALLOC_ARENA_MAX=2 (windows of about 1 MiB), after a 5 s warm-up of wrk. A leak grows
the process with every request, so in at least one of three 10 s windows of load the growth must
stay under 256 bytes per request served (a leak of 1 KiB per request grew it by about 630 bytes per
request in every window; without it the smallest window grew by 0 to 195 bytes per request).
Training's own heap also grows now and then (0.7 to 50 MiB in a 10 s window of the quiet run): the
smallest of the windows keeps such a jump from failing the test, which comparing one loaded window
with one quiet window did (71.6 MiB against 0.7 MiB), and so did two windows once (38.7 and 33.5
MiB, 2026-12-06, in a full ctest run; 8.9 and 18.7, then 0.0 and 2.2 MiB when rerun alone).

usage: metrics_load_test.py STYLEFLEET_BINARY SOURCE_DIR
"""
import json
import os
import re
import signal
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from harness import check, finish, write_job

BINARY, SOURCE = sys.argv[1], sys.argv[2]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024


def requests_of(wrk_report):
    return int(re.search(r"(\d+) requests in", wrk_report).group(1))


# 10 s windows of load whose smallest memory growth must stay under the leak bound.
WINDOWS = 3


def images_per_second(metrics_file):
    records = [json.loads(line) for line in open(metrics_file)]
    rates = [r["images_per_second"] for r in records[2:]]  # skip warm-up
    return sorted(rates)[len(rates) // 2] if rates else 0.0


def run(work, name, load):
    job = write_job(
        os.path.join(work, name + ".yaml"),
        job={"name": name, "output_dir": f"{work}/{name}", "seed": 2},
        data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 96, "loader_threads": 1},
        training={"batch_size": 2, "epochs": 0, "max_steps": 100000, "log_every_steps": 2,
                  "preview_every_steps": 0},
        checkpoint={"every_steps": 1000},
        monitoring={"listen": "127.0.0.1:0", "linger_seconds": 0},
        styles=[{"image": f"{SOURCE}/configs/data/styles/udnie.jpg"}])
    # Two malloc arenas: glibc's default gives each serving thread one of up to 8 per core on
    # its first scrapes, a growth of tens of MiB that went on into the windows after a warm-up
    # (8.1 and 30.0 MiB in two of them) and would hide a leak or fake one.
    p = subprocess.Popen([BINARY, "train", job, "--no-progress", "--threads", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=dict(os.environ, MALLOC_ARENA_MAX="2"))
    targets = os.path.join(work, name, "prometheus_targets.json")
    deadline = time.time() + 120
    while not os.path.exists(targets) and time.time() < deadline:
        time.sleep(0.1)
    address = json.load(open(targets))[0]["targets"][0]
    url = f"http://{address}/metrics"
    while time.time() < deadline:
        try:
            if b"stylefleet_style_loss{" in urllib.request.urlopen(url, timeout=2).read():
                break
        except Exception:
            pass
        time.sleep(0.2)
    # The first steps grow the process by hundreds of MiB (allocator and kernel caches): how
    # many steps a 10 s window holds depends on the machine's speed and load, so the window
    # starts once training is past them (10 steps recorded), in both runs.
    metrics = os.path.join(work, name, "udnie", "metrics.jsonl")
    while time.time() < deadline + 300:
        if os.path.exists(metrics) and sum(1 for _ in open(metrics)) >= 5:
            break
        time.sleep(0.2)
    result = {}
    if not load:
        time.sleep(10)  # a window of training; the throughput check compares median step rates
    if load:
        # The warm-up: each serving thread's first scrapes give it its malloc arena.
        subprocess.run(["wrk", "-t1", "-c4", "-d5s", url], stdout=subprocess.DEVNULL,
                       stderr=subprocess.STDOUT, check=True)
        rss_warm = rss_mib(p.pid)
        wrk = subprocess.Popen(["wrk", "-t1", "-c4", "-d10s", "--latency", url],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        samples, complete = 0, 0
        while wrk.poll() is None:
            body = urllib.request.urlopen(url, timeout=5).read().decode()
            result["response_bytes"] = len(body)
            samples += 1
            complete += body.endswith("\n") and "stylefleet_weighted_loss{" in body and "stylefleet_info{" in body
            time.sleep(0.05)
        report = wrk.communicate()[0]
        rss = [rss_warm, rss_mib(p.pid)]
        counts = [requests_of(report)]
        for _ in range(WINDOWS - 1):
            more = subprocess.run(["wrk", "-t1", "-c4", "-d10s", url], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, check=True).stdout
            rss.append(rss_mib(p.pid))
            counts.append(requests_of(more))
        result["rss_windows"] = [(rss[i + 1] - rss[i], counts[i]) for i in range(WINDOWS)]
        result["wrk"] = report
        result["samples"] = (samples, complete)
        try:
            urllib.request.urlopen(f"http://{address}/index.html", timeout=2)
            result["other_path"] = 200
        except urllib.error.HTTPError as e:
            result["other_path"] = e.code
    # The run trains until it is told to stop, so both windows see it training however fast
    # or loaded the machine is (a 40-step run once ended inside the quiet window); SIGTERM
    # ends the step, writes a checkpoint and exits 0.
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=600)
    result["exit"] = p.returncode
    result["rate"] = images_per_second(os.path.join(work, name, "udnie", "metrics.jsonl"))
    return result


def main():
    if shutil.which("wrk") is None:
        sys.exit("wrk not installed: run launch/install_deps.sh")
    work = tempfile.mkdtemp(prefix="stylefleet_load_")
    try:
        quiet = run(work, "quiet", load=False)
        loaded = run(work, "loaded", load=True)
        report = loaded["wrk"]
        print(report)
        requests = requests_of(report)
        check(quiet["exit"] == 0 and loaded["exit"] == 0, "both training runs exited 0")
        check(requests > 100, f"wrk made {requests} requests to /metrics in 10 s")
        # The exporter closes every connection after its response (no keep-alive, so no client
        # can hold the serving threads); wrk counts those closes as read errors. Connect, write
        # and timeout errors would be real failures, and the bytes per request show that every
        # response arrived whole.
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report)
        connect, _, write, timeouts = (int(x) for x in errors.groups()) if errors else (0, 0, 0, 0)
        check(connect == 0 and write == 0 and timeouts == 0,
              f"no connect, write or timeout errors ({connect}, {write}, {timeouts})")
        size = re.search(r"requests in [\d.]+s, ([\d.]+)(KB|MB|GB) read", report)
        total = float(size.group(1)) * {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[size.group(2)]
        check(total / requests >= 0.9 * loaded["response_bytes"],
              f"{total / requests:.0f} bytes per wrk response, a full document is {loaded['response_bytes']}")
        check("Non-2xx" not in report, "every response was a 200")
        samples, complete = loaded["samples"]
        check(samples > 0 and samples == complete, f"{complete}/{samples} sampled responses were complete documents")
        check(loaded["other_path"] == 404, f"other paths get 404 (got {loaded['other_path']})")
        ratio = loaded["rate"] / quiet["rate"]
        check(ratio >= 0.3, f"training kept {ratio:.0%} of its quiet throughput under load "
                            f"({loaded['rate']:.2f} vs {quiet['rate']:.2f} images/s)")
        windows = loaded["rss_windows"]
        per_request = [growth * 2**20 / max(count, 1) for growth, count in windows]
        check(min(per_request) < 256,
              "resident memory grew " + " and ".join(
                  f"{growth:.1f} MiB in {count} requests ({bytes_each:.0f} bytes each)"
                  for (growth, count), bytes_each in zip(windows, per_request))
              + f" in {WINDOWS} windows of load after the warm-up (a leak grows it in every one)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("metrics load test")


if __name__ == "__main__":
    sys.exit(main())
