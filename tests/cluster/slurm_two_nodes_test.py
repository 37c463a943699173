#!/usr/bin/python3
"""launch/slurm.sbatch on a two-node Slurm cluster (ctest labels `cluster`, `mpi`; issue 33).

Two hosts on this machine (tests/cluster/virtual_hosts.py: network, UTS and mount namespaces
on a bridge), each a Slurm node with its own slurmd; slurmctld runs on the first
(tests/cluster/slurm_cluster.py). `sbatch --nodes=2 --ntasks-per-node=1` of the shipped script
starts one rank on each node with `srun --mpi=pmix`:

1. the job trains, COMPLETED with exit 0; its log says rank 0 runs on sf-node-a and rank 1 on
   sf-node-b (one group spanning both nodes);
2. the model equals the same job's under `mpirun -np 2` on one host bit for bit.
Skipped (exit 77) where namespaces or the test cluster cannot run (not root, packages missing).

usage: slurm_two_nodes_test.py STYLEFLEET_BINARY SOURCE_DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reliability"))
import harness  # noqa: E402
from harness import check, check_no_process_left, finish, run_guarded  # noqa: E402
import slurm_cluster  # noqa: E402
import virtual_hosts  # noqa: E402

BINARY, SOURCE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
SCRIPT = os.path.join(SOURCE, "launch", "slurm.sbatch")
HOSTS = ["sf-node-a", "sf-node-b"]
GUARD_SECONDS = 300  # turns a hang into a failure


def write_job(folder):
    harness.write_job(os.path.join(folder, "job.yaml"),
                      job={"name": "slurmed", "output_dir": f"{folder}/out", "seed": 4},
                      data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 64, "loader_threads": 1},
                      loss_network={"weights": "random:2"},
                      training={"batch_size": 2, "epochs": 0, "max_steps": 3, "log_every_steps": 1,
                                "preview_every_steps": 0},
                      distributed={"ranks_per_style": 2},
                      monitoring={"listen": "off", "linger_seconds": 0},
                      styles=[{"name": "wave", "image": f"{SOURCE}/configs/data/styles/wave.jpg"}])


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def trains_across_nodes(hosts, slurm, work):
    folder, reference = os.path.join(work, "nodes"), os.path.join(work, "reference")
    for f in (folder, reference):
        os.makedirs(f)
        write_job(f)
    log = os.path.join(folder, "job.log")
    submit = slurm.client(["sbatch", "--parsable", "--wait", "--nodes=2", "--ntasks-per-node=1",
                           "--cpus-per-task=1", f"--chdir={folder}", f"--output={log}", SCRIPT,
                           os.path.join(folder, "job.yaml"), "--no-progress"],
                          cwd=folder, env={"STYLEFLEET_BINARY": BINARY})
    p = subprocess.run(submit, env=slurm.env, capture_output=True, text=True, timeout=GUARD_SECONDS)
    job = p.stdout.strip().split(";")[0]
    text = read(log).decode(errors="replace")
    state = slurm.job_field(job, "JobState") if job.isdigit() else None
    check(state == "COMPLETED" and slurm.job_field(job, "ExitCode") == "0:0",
          f"sbatch --nodes=2: the job trained ({state}, sbatch exit {p.returncode})" +
          ("" if state == "COMPLETED" else f"\n{p.stderr[-1000:]}\n{text[-3000:]}"))
    placed = f"2 host(s): {HOSTS[0]} (rank 0), {HOSTS[1]} (rank 1)"
    spans = f"group 0 (ranks 0-1 on {HOSTS[0]}, {HOSTS[1]}): wave"
    check(placed in text and spans in text, f"the log names each rank's node: '{placed}', '{spans}'")
    # The reference in the same fresh environment on host A (OpenBLAS's kernels follow it).
    mpirun = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "2",
              BINARY, "train", os.path.join(reference, "job.yaml"), "--no-progress", "--threads", "1"]
    code, seconds, out = run_guarded(hosts.command(HOSTS[0], mpirun, reference), reference, GUARD_SECONDS)
    check(code == 0, f"the same job under mpirun -np 2 on one host: exit {code} after {seconds:.1f} s" +
          ("" if code == 0 else "\n" + out[-2000:]))
    mine, theirs = (read(os.path.join(f, "out", "wave", "model.pt")) for f in (folder, reference))
    check(bool(mine) and mine == theirs,
          "srun --mpi=pmix over two nodes trains the model of mpirun -np 2 on one host bit for bit")


def main():
    why = virtual_hosts.available() or slurm_cluster.available()
    if why:
        print(f"skipped: {why}")
        return 77
    work = tempfile.mkdtemp(prefix="stylefleet_slurmnodes_")
    try:
        setup = slurm_cluster.host_setup()
        with virtual_hosts.VirtualHosts(HOSTS, setup={h: setup for h in HOSTS},
                                        also_remove=[work]) as hosts:
            with slurm_cluster.SlurmCluster(cpus=1, hosts=hosts) as slurm:
                trains_across_nodes(hosts, slurm, work)
        check(not virtual_hosts.leftovers(), f"no namespace is left: {virtual_hosts.leftovers()}")
        check_no_process_left(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish("slurm_two_nodes_test")


if __name__ == "__main__":
    sys.exit(main())
