#!/usr/bin/python3
"""The guards' counters as a scraper sees them (ctest labels `reliability`, `mpi`).

A job under `mpirun -np 2` serves /metrics on loopback (rank r on port P + r). Test-only
faults make four steps non-finite, one of each kind (NaN loss, Inf loss, NaN gradient,
Inf gradient), none in a row: each rank's stylefleet_bad_steps_total must read exactly 4 and
training goes on. Then rank 1 is frozen (SIGSTOP) until rank 0 has logged its stall warning
(after distributed.stall_warn_seconds, 1 s), then continued: rank 0's
stylefleet_collective_stalls_total must go up from its value before the freeze (a loaded
machine may have counted a slow step already, so the known start is the value read, not 0). Everything is read over HTTP from the
running job; SIGTERM then ends it. Deadlines only turn a hang into a failure.

usage: guard_metrics_test.py STYLEFLEET_BINARY SOURCE_DIR
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
import urllib.request

from harness import LineReader, check, failures, finish, write_job

BINARY, SOURCE = sys.argv[1], sys.argv[2]
FAULTS = ["wave:3:nan-loss", "wave:5:inf-loss", "wave:7:nan-gradient", "wave:9:inf-gradient"]


def free_port_pair():
    """A port P with P and P + 1 free on loopback (rank r serves on P + r)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two adjacent free ports")


def scrape(port):
    """{(name, frozenset(labels)): value} from http://127.0.0.1:port/metrics; {} when unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except Exception:
        return {}
    series = {}
    for line in text.splitlines():
        m = re.match(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$', line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            series[(m.group(1), labels)] = float(m.group(3))
    return series


def value(series, name, **labels):
    """The value of the one series of `name` whose labels include `labels`; None when absent."""
    found = [v for (n, l), v in series.items() if n == name and set(labels.items()) <= l]
    return found[0] if len(found) == 1 else None


def wait_until(port, condition, seconds, process):
    """Scrapes every 0.2 s until condition(series) holds or `process` ends; the last scrape."""
    deadline = time.time() + seconds
    series = {}
    while time.time() < deadline and process.poll() is None:
        series = scrape(port)
        if series and condition(series):
            break
        time.sleep(0.2)
    return series


def rank_pids(launcher):
    """{world rank: pid} of the stylefleet processes mpirun started."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(launcher)],
                         capture_output=True, text=True).stdout
    ranks = {}
    for line in out.splitlines():
        pid, args = line.split(None, 1)
        if "stylefleet" not in args:
            continue
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
        ranks[int(env.get(b"OMPI_COMM_WORLD_RANK", b"-1"))] = int(pid)
    return ranks


def main():
    work = tempfile.mkdtemp(prefix="stylefleet_guards_")
    port = free_port_pair()
    try:
        job = write_job(
            os.path.join(work, "job.yaml"),
            job={"name": "guards", "output_dir": f"{work}/out", "seed": 3},
            data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 64, "loader_threads": 1},
            training={"batch_size": 1, "epochs": 0, "max_steps": 100000, "log_every_steps": 10,
                      "preview_every_steps": 0, "max_bad_steps": 2},
            checkpoint={"every_steps": 100000, "keep": 1},
            distributed={"stall_warn_seconds": 1, "timeout_seconds": 60},
            monitoring={"listen": f"127.0.0.1:{port}", "listen_strict": True, "linger_seconds": 0},
            styles=[{"image": f"{SOURCE}/configs/data/styles/wave.jpg"}])
        launch = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2",
                  BINARY, "train", job, "--threads", "1", "--test-inject-fault", *FAULTS]
        p = subprocess.Popen(launch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        reader = LineReader(p)

        def steps(series):
            return value(series, "stylefleet_steps_total", style="wave") or 0

        # Past the last fault (step 9) with margin: every bad step is counted by now.
        ranks_series = [wait_until(port, lambda s: steps(s) >= 12, 300, p), scrape(port + 1)]
        for rank, series in enumerate(ranks_series):
            check(bool(series), f"rank {rank} serves /metrics on port {port + rank}")
            bad = value(series, "stylefleet_bad_steps_total", style="wave", rank=str(rank))
            check(bad == 4, f"rank {rank}: stylefleet_bad_steps_total reads 4 after one fault of "
                            f"each kind (got {bad})")
        check(p.poll() is None, "four faults, never two in a row (max_bad_steps 2): training goes on")

        before = value(scrape(port), "stylefleet_collective_stalls_total", rank="0")
        check(before is not None, f"rank 0 exports stylefleet_collective_stalls_total (before the freeze: {before})")
        before = before or 0
        pids = rank_pids(p.pid)
        check(sorted(pids) == [0, 1], f"two ranks running: {pids}")
        after = None
        if 1 in pids:
            # Frozen until rank 0 warns (a known point, not a sleep); the stall is counted
            # once the collective completes, after the rank continues.
            reader.discard()
            os.kill(pids[1], signal.SIGSTOP)
            warned = reader.wait_for(r"rank 1 \(host [^)]+\) has not reached it", seconds=120)
            os.kill(pids[1], signal.SIGCONT)
            check(warned is not None, "rank 0 warned about the frozen rank 1")
            after = value(wait_until(port, lambda s: (value(s, "stylefleet_collective_stalls_total",
                                                             rank="0") or 0) > before, 120, p),
                          "stylefleet_collective_stalls_total", rank="0")
        check(after is not None and after > before,
              f"rank 0: stylefleet_collective_stalls_total counted the freeze ({before} -> {after})")

        for pid in rank_pids(p.pid).values():
            os.kill(pid, signal.SIGTERM)
        out = reader.output(seconds=120)
        check(p.returncode == 0, f"SIGTERM ended the job cleanly (exit {p.returncode})")
        check(out.count("NaN or infinite loss or gradient; step skipped (1 in a row") == 4,
              "the log names each of the four skipped steps once")
        if failures:
            print(out[-4000:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("guard metrics test")


if __name__ == "__main__":
    sys.exit(main())
