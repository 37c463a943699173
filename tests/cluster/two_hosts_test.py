#!/usr/bin/python3
"""Launches across two hosts (ctest labels `cluster`, `mpi`; issue 33).

Two "hosts" on this machine (tests/cluster/virtual_hosts.py: network, UTS and mount namespaces,
a bridge, Open MPI started through an rsh agent; real TCP between hosts). Each part compares
with the same launch on one host (plain `mpirun`, same ranks, one thread per rank):

1. 2 hosts x 1 rank, one style trained by both (a group that spans the hosts): the model is the
   one-host model bit for bit; the log and `check --hostfile` say which host runs which rank.
2. 2 hosts x 2 ranks, two styles of 2 ranks each (each group within a host): both models equal
   the one-host run's; each host's ranks take the metrics port + their local rank on their own
   host, the targets file lists all four endpoints, and a real Prometheus on host A scrapes
   every rank over the link: each style's per-layer style losses come from its group root's
   host.
3. Bad hosts: a hostfile naming a host that does not answer, and two machines with one host
   name (ranks 0 and 1 both local rank 0 of "sf-node-a"): each ends within seconds, exit
   non-zero (2 for the names), naming the host, and nothing is written.
4. A host dies mid-training under `launch/mpirun.sh --restarts 1` (host B's link cut and every
   process on it killed at once): the survivor ends by itself well within
   distributed.timeout_seconds, the script names the lost host (Open MPI's own message says
   only that daemons failed to start) and relaunches on host A alone, which resumes from the
   newest checkpoint on the shared folder with the same images per step (elastic resume: 1 rank
   of batch 4 in 2 micro-batches where there were 2 ranks of 2) and finishes: the model equals
   an uninterrupted 2-rank run's bit for bit.
Skipped (exit 77) where namespaces are not permitted (not root).

usage: two_hosts_test.py STYLEFLEET_BINARY SOURCE_DIR [span|within|bad|dies ...]
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reliability"))
from harness import LineReader, check, check_no_process_left, finish, run_guarded, same_tensors  # noqa: E402
import harness  # noqa: E402
import virtual_hosts  # noqa: E402

BINARY, SOURCE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
HOSTS = ["sf-node-a", "sf-node-b"]
GUARD_SECONDS = 240  # turns a hang into a failure; far above a run's few seconds
LAYERS = ["conv1_2", "conv2_2", "conv3_3", "conv4_3"]
PROMETHEUS_PORT = 19090
METRICS_PORT = 19450
DEATH_TIMEOUT = 15  # distributed.timeout_seconds of the launch that loses a host
DEATH_STEPS = 24  # the steps of that job: host B dies after step 3, the relaunch trains the rest


# monitoring's default listen address, written out (harness.write_job turns a left-out section off).
DEFAULT_MONITORING = {"listen": "0.0.0.0:9450"}
QUIET_MONITORING = {"listen": "off", "linger_seconds": 0}


def write_job(folder, styles, ranks_per_style, steps, monitoring=None, checkpoint=None):
    harness.write_job(
        os.path.join(folder, "job.yaml"),
        job={"name": "twohosts", "output_dir": f"{folder}/out", "seed": 5},
        data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 64, "loader_threads": 1},
        loss_network={"weights": "random:2"},
        training={"batch_size": 2, "epochs": 0, "max_steps": steps, "log_every_steps": 1,
                  "preview_every_steps": 0},
        distributed={"ranks_per_style": ranks_per_style, "timeout_seconds": 120},
        checkpoint=checkpoint, monitoring=monitoring or DEFAULT_MONITORING,
        styles=[{"name": s, "image": f"{SOURCE}/configs/data/styles/{s}.jpg"} for s in styles])


def on_hosts(hosts, argv, folder):
    """run_guarded on the hosts; after a hang every process on them is killed, so that
    nothing of it runs on into the next part."""
    code, seconds, out = run_guarded(argv, folder, GUARD_SECONDS)
    if code is None:
        hosts.kill_everything()
    return code, seconds, out


def train_args(folder):
    return [BINARY, "train", os.path.join(folder, "job.yaml"), "--no-progress", "--threads", "1"]


def one_host(hosts, folder, np):
    """The reference: the same job under plain mpirun on host A alone (the same fresh
    environment as the launches across hosts: OpenBLAS's kernels, for one, follow it)."""
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", str(np)]
    code, seconds, out = on_hosts(hosts, hosts.command(HOSTS[0], cmd + train_args(folder), folder), folder)
    check(code == 0, f"one host, {np} ranks: exit {code} after {seconds:.1f} s" +
          ("" if code == 0 else "\n" + out[-3000:]))


def same_models(folder, reference, styles, what):
    for style in styles:
        mine, theirs = (os.path.join(f, "out", style, "model.pt") for f in (folder, reference))
        same = os.path.exists(mine) and os.path.exists(theirs) and open(mine, "rb").read() == open(theirs, "rb").read()
        check(same, f"{what}: model of {style} equals the one-host run's bit for bit")


def spanning_group(hosts, work):
    folder, reference = os.path.join(work, "span"), os.path.join(work, "span-ref")
    for f in (folder, reference):
        os.makedirs(f)
        write_job(f, ["wave"], 2, 3)
    code, seconds, out = on_hosts(hosts, hosts.mpirun(1, train_args(folder), folder), folder)
    check(code == 0, f"2 hosts x 1 rank: exit {code} after {seconds:.1f} s" + ("" if code == 0 else "\n" + out[-3000:]))
    one_host(hosts, reference, 2)
    same_models(folder, reference, ["wave"], "2 hosts x 1 rank")
    placed = f"2 host(s): {HOSTS[0]} (rank 0), {HOSTS[1]} (rank 1)"
    spans = f"group 0 (ranks 0-1 on {HOSTS[0]}, {HOSTS[1]}): wave"
    check(placed in out and spans in out, f"the log names each rank's host: '{placed}', '{spans}'")
    planned = subprocess.run([BINARY, "check", os.path.join(folder, "job.yaml"), "--hostfile",
                              hosts.hostfile(1)], capture_output=True, text=True)
    check(planned.returncode == 0 and placed in planned.stdout and spans in planned.stdout,
          "`check --hostfile` plans the same placement" + ("" if planned.returncode == 0 else ": " + planned.stderr))


def query(hosts, expr):
    """A PromQL query to the Prometheus on host A, asked from host A (its port is there only)."""
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    fetch = ["/usr/bin/python3", "-c", "import sys, urllib.request; "
             "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())", url]
    p = subprocess.run(hosts.command(HOSTS[0], fetch), capture_output=True, text=True, timeout=60)
    return json.loads(p.stdout).get("data", {}).get("result", []) if p.returncode == 0 else []


def groups_within_hosts(hosts, work):
    folder, reference = os.path.join(work, "within"), os.path.join(work, "within-ref")
    monitoring = {"listen": f"0.0.0.0:{METRICS_PORT}", "linger_seconds": 60}
    for f, watched in [(folder, monitoring), (reference, QUIET_MONITORING)]:
        os.makedirs(f)
        write_job(f, ["wave", "candy"], 2, 3, watched)
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        f.write(f"""global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: stylefleet
    honor_labels: true
    file_sd_configs: [{{files: ['{folder}/out/prometheus_targets.json'], refresh_interval: 1s}}]
""")
    log = open(os.path.join(work, "prometheus.log"), "w")
    prometheus = subprocess.Popen(hosts.command(HOSTS[0], [
        "prometheus", f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/tsdb",
        f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"]), stdout=log, stderr=log)
    try:
        code, seconds, out = on_hosts(hosts, hosts.mpirun(2, train_args(folder), folder), folder)
        check(code == 0, f"2 hosts x 2 ranks: exit {code} after {seconds:.1f} s" + ("" if code == 0 else "\n" + out[-3000:]))
        check("final values scraped after" in out, "every rank's final values were scraped over the link")
        groups = [f"group 0 (ranks 0-1 on {HOSTS[0]}): wave", f"group 1 (ranks 2-3 on {HOSTS[1]}): candy"]
        check(all(g in out for g in groups), f"the log places each group on one host: {groups}")
        endpoints = sorted(f"{h}:{METRICS_PORT + local}" for h in HOSTS for local in (0, 1))
        served = sorted(l.split("metrics on http://")[1].split("/")[0] for l in out.splitlines() if "metrics on http://" in l)
        check(served == endpoints, f"each host's ranks serve on port + local rank there: {served}")
        # The finished job withdrew its targets, so its series are stale now: read the last
        # values of the last 10 minutes.
        up = query(hosts, 'max_over_time(stylefleet_finished{job="twohosts"}[10m]) == 1')
        check(sorted(r["metric"].get("instance", "") for r in up) == endpoints,
              f"Prometheus on {HOSTS[0]} scraped every rank's final values: {[r['metric'].get('instance') for r in up]}")
        for style, host in (("wave", HOSTS[0]), ("candy", HOSTS[1])):
            found = query(hosts, f'last_over_time(stylefleet_style_loss{{job="twohosts",style="{style}"}}[10m])')
            layers = sorted(r["metric"].get("layer", "") for r in found)
            from_hosts = {r["metric"].get("instance", "").split(":")[0] for r in found}
            check(layers == sorted(LAYERS) and from_hosts == {host},
                  f"{style}: per-layer style losses {layers} scraped from its group root on {from_hosts}")
    finally:
        prometheus.kill()
        prometheus.wait()
        log.close()
    one_host(hosts, reference, 4)
    same_models(folder, reference, ["wave", "candy"], "2 hosts x 2 ranks")


def host_dies(hosts, work):
    folder, reference = os.path.join(work, "dies"), os.path.join(work, "dies-ref")
    for f in (folder, reference):
        os.makedirs(f)
        # ranks_per_style 0 (all ranks): a job that asks for 2 ranks per style cannot go on with 1.
        write_job(f, ["wave"], 0, DEATH_STEPS, QUIET_MONITORING, {"every_steps": 2, "keep": 2})
    # Through launch/mpirun.sh, which names the hosts that no longer answer after a failure
    # and, with --restarts, relaunches on those that do.
    launch = [os.path.join(SOURCE, "launch", "mpirun.sh"), "--hostfile", hosts.hostfile(1),
              "--ranks-per-node", "1", "--iface", "eth0", "--binary", BINARY, "--restarts", "1",
              "--"] + train_args(folder)[1:] + [
                  "--set", f"distributed.timeout_seconds={DEATH_TIMEOUT}",
                  "--set", "distributed.stall_warn_seconds=5"]
    p = subprocess.Popen(hosts.command(HOSTS[0], launch, folder, env={"OMPI_MCA_plm_rsh_agent": hosts.agent}),
                         cwd=folder,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reader = LineReader(p)
    stepped = reader.wait_for(r"\] step [3-9]/|\] step \d\d+/", seconds=GUARD_SECONDS)
    check(bool(stepped), "the launch trained past its first checkpoint")
    survivors = hosts.processes(HOSTS[0], BINARY)
    killed = time.monotonic()
    hosts.kill_host(HOSTS[1])
    # A dead host sends nothing (no TCP reset): the survivors learn of it from their
    # collective timeout. The margin covers the step in progress and the exit.
    while hosts.processes(HOSTS[0], BINARY) and time.monotonic() - killed < GUARD_SECONDS:
        time.sleep(0.2)
    survivors_took = time.monotonic() - killed
    out = reader.output(seconds=GUARD_SECONDS)
    if not reader.ended:
        hosts.kill_everything()
    took = time.monotonic() - killed
    check(len(survivors) == 1 and survivors_took < DEATH_TIMEOUT + 15,
          f"the surviving rank {survivors} ended {survivors_took:.1f} s after host B died "
          f"(distributed.timeout_seconds {DEATH_TIMEOUT})")
    check(reader.ended and p.returncode == 0,
          f"the launch ended by itself, exit 0 after its restart ({p.returncode}), {took:.1f} s "
          "after host B died" + ("" if p.returncode == 0 else "\n" + out[-3000:]))
    after = out[out.find(stepped.group(0)):] if stepped else out
    gave_up = [line for line in after.splitlines() if "did not complete within" in line]
    check(any(f"rank 1 (host {HOSTS[1]}) has not reached it" in line for line in gave_up),
          "the surviving rank gave up at its collective timeout, naming the lost rank and host: " +
          (gave_up[0] if gave_up else "(no such line)\n" + after[-3000:]))
    named = [line for line in after.splitlines() if f"host(s) {HOSTS[1]} could not be reached" in line]
    check(bool(named), f"launch/mpirun.sh names the lost host {HOSTS[1]}, and only it: " +
          (named[0] if named else "\n" + after[-2000:]))
    restarted = f"restart 1 of 1, without host(s) {HOSTS[1]}: 1 rank(s) on {HOSTS[0]}"
    check(restarted in after, f"launch/mpirun.sh --restarts relaunched on host A alone: '{restarted}'")
    relaunch = after[after.find(restarted):]
    elastic = ("on 1 rank(s) each takes batch_size 4 in 2 micro-batch(es) of 2, the same 4 images "
               "per step (elastic resume; with the MPI backend, bit for bit")
    check("resuming from" in relaunch and "ignoring unreadable" not in relaunch and elastic in relaunch,
          "the relaunch resumed from the newest checkpoint (intact) on one rank with the same 4 "
          "images per step" + ("" if elastic in relaunch else "\n" + relaunch[-3000:]))
    one_host(hosts, reference, 2)
    same, said = same_tensors(os.path.join(folder, "out", "wave", "model.pt"),
                              os.path.join(reference, "out", "wave", "model.pt"), 60)
    check(same, f"the model after the lost host and the elastic relaunch equals an uninterrupted "
                f"2-rank run's, bit for bit: {said}")


def bad_hosts(hosts, work):
    """A hostfile naming a host that does not exist, and two machines with one host name:
    each ends within seconds with an error naming the host, and nothing is written."""
    folder = os.path.join(work, "bad")
    os.makedirs(folder)
    write_job(folder, ["wave"], 0, 3, QUIET_MONITORING)
    hostfile = os.path.join(work, "hosts-with-a-ghost")
    with open(hostfile, "w") as f:
        f.write("".join(f"{h} slots=1\n" for h in HOSTS) + "sf-node-ghost slots=1\n")
    launch = [os.path.join(SOURCE, "launch", "mpirun.sh"), "--hostfile", hostfile, "--ranks-per-node",
              "1", "--iface", "eth0", "--binary", BINARY, "--"] + train_args(folder)[1:]
    code, seconds, out = on_hosts(hosts, hosts.command(HOSTS[0], launch, folder, env={
        "OMPI_MCA_plm_rsh_agent": hosts.agent}), folder)
    check(code not in (0, None) and "host(s) sf-node-ghost could not be reached" in out,
          f"a hostfile naming a host that does not answer: exit {code} after {seconds:.1f} s, "
          "the host named" + ("" if "sf-node-ghost could" in out else "\n" + out[-2000:]))
    check(not os.path.exists(os.path.join(folder, "out")), "nothing was written")

    hosts.set_hostname(HOSTS[1], HOSTS[0])
    try:
        code, seconds, out = on_hosts(hosts, hosts.mpirun(1, train_args(folder), folder), folder)
    finally:
        hosts.set_hostname(HOSTS[1])
    expected = f"ranks 0 and 1 both run as local rank 0 on a host named '{HOSTS[0]}'"
    check(code == 2 and expected in out,
          f"two machines named {HOSTS[0]}: exit {code} after {seconds:.1f} s, '{expected}'" +
          ("" if expected in out else "\n" + out[-2000:]))
    check(not os.path.exists(os.path.join(folder, "out")), "nothing was written")


def main():
    parts = sys.argv[3:] or ["span", "within", "bad", "dies"]  # a subset, for debugging
    why = virtual_hosts.available()
    if why:
        print(f"skipped: {why}")
        return 77
    work = tempfile.mkdtemp(prefix="stylefleet_twohosts_")
    try:
        with virtual_hosts.VirtualHosts(HOSTS, also_remove=[work]) as hosts:
            for name, part in (("span", spanning_group), ("within", groups_within_hosts),
                               ("bad", bad_hosts), ("dies", host_dies)):
                if name in parts:
                    part(hosts, work)
        check(not virtual_hosts.leftovers(), f"no namespace is left: {virtual_hosts.leftovers()}")
        check_no_process_left(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("two_hosts_test")


if __name__ == "__main__":
    sys.exit(main())
