"""A real Slurm cluster for tests (issue 33): Debian's munged, slurmctld and slurmd, started
from a generated slurm.conf in a temporary folder, on free ports, and stopped afterwards.
Clients (sbatch, srun, scancel, scontrol) reach it through SLURM_CONF in `env`.

One node on this machine by default. Given VirtualHosts (tests/cluster/virtual_hosts.py,
created with `setup=host_setup()` for each host), one node per host: slurmctld runs on the
first, a slurmd on each, and clients must run on a host (`client(argv)`). munged runs on this
machine; its socket file is reached from every host. Slurm's PMIx plugin makes per-step
folders under the same names on every node, so each host gets a private NODE_SCRATCH for them
(mpi.conf PMIxCliTmpDirBase); /tmp stays shared.

Clean-up is total: on leaving the `with` block (and at interpreter exit) every job is
cancelled, the daemons are stopped (SIGTERM, then SIGKILL), any slurmstepd they started is
killed and the folder removed. Needs root and the packages slurmctld, slurmd, slurm-client and
munge (launch/install_deps.sh); `available()` says why not.
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

NODE = "sf-slurm-node"
NODE_SCRATCH = "/mnt"  # node-local on namespace hosts (host_setup)


def available():
    """None where a test cluster can run here; else the reason."""
    if os.geteuid() != 0:
        return "not root: the test cluster's daemons run as root"
    missing = [t for t in ("munged", "slurmctld", "slurmd", "sbatch", "srun") if shutil.which(t) is None]
    if missing:
        return "not installed: " + ", ".join(missing) + " (launch/install_deps.sh installs them)"
    return None


def host_setup():
    """Setup lines for a VirtualHosts host that runs a slurmd: `ip netns exec` mounts a fresh
    /sys without the cgroup file systems slurmd needs, so they are mounted again as this
    machine has them (cgroup v1 hierarchies or v2), and /tmp becomes node-local."""
    lines = []
    with open("/proc/self/mounts") as f:
        for line in f:
            _, path, fstype, options = line.split()[:4]
            if not path.startswith("/sys/fs/cgroup"):
                continue
            if fstype == "tmpfs":
                lines.append(f"mount -t tmpfs -o {options} tmpfs {path}")
            elif fstype in ("cgroup", "cgroup2"):
                lines.append(f"mkdir -p {path} && mount -t {fstype} -o {options} {fstype} {path}")
    # Node-local scratch for the PMIx plugin's per-step folders (mpi.conf PMIxCliTmpDirBase):
    # /mnt, not /tmp, which holds the sources and binary when the repository is cloned there.
    return " && ".join(lines + [f"mount -t tmpfs tmpfs {NODE_SCRATCH}"])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_named(name):
    out = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


class SlurmCluster:
    """`with SlurmCluster(cpus=2) as slurm:` then `subprocess.run([...], env=slurm.env)`."""

    def __init__(self, cpus=2, hosts=None):
        """`cpus` per node; `hosts`: a VirtualHosts whose hosts become the nodes."""
        self.cpus = cpus
        self.hosts = hosts
        self.nodes = list(hosts.names) if hosts is not None else [NODE]
        self.dir = None
        self.daemons = []
        self.env = None
        self._stepd_before = set()

    def __enter__(self):
        atexit.register(self.close)
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _start(self):
        self.dir = tempfile.mkdtemp(prefix="stylefleet_slurm_")
        d = self.dir
        for sub in ["state", "munge"] + [f"spool-{n}" for n in self.nodes]:
            os.makedirs(os.path.join(d, sub))
        os.chmod(os.path.join(d, "munge"), 0o700)
        key = os.path.join(d, "munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o600)
        self.socket = os.path.join(d, "munge", "munge.socket")
        if self.hosts is None:
            controller, addresses = f"{socket.gethostname()}(127.0.0.1)", {NODE: "127.0.0.1"}
        else:
            addresses = dict(self.hosts.address)
            controller = f"{self.nodes[0]}({addresses[self.nodes[0]]})"
        node_lines = "".join(f"NodeName={n} NodeAddr={addresses[n]} CPUs={self.cpus} RealMemory=2000 "
                             "State=UNKNOWN\n" for n in self.nodes)
        with open(os.path.join(d, "slurm.conf"), "w") as f:
            f.write(f"""ClusterName=stylefleet-test
SlurmctldHost={controller}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={self.socket}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool-%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd-%n.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
KillWait=30
MinJobAge=600
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
{node_lines}PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
""")
        if self.hosts is not None:
            with open(os.path.join(d, "mpi.conf"), "w") as f:
                f.write(f"PMIxCliTmpDirBase={NODE_SCRATCH}\n")
        self.env = dict(os.environ, SLURM_CONF=os.path.join(d, "slurm.conf"))
        self._stepd_before = _pids_named("slurmstepd")
        log = open(os.path.join(d, "daemons.log"), "w")
        self.daemons.append(subprocess.Popen(
            ["munged", "-F", "-f", "-S", self.socket, f"--key-file={key}",
             f"--log-file={d}/munged.log", f"--pid-file={d}/munge/munged.pid",
             f"--seed-file={d}/munge/seed"], stdout=log, stderr=log))
        self._wait(lambda: os.path.exists(self.socket), "munged's socket")
        conf = self.env["SLURM_CONF"]
        self.daemons.append(subprocess.Popen(self._on(self.nodes[0], ["slurmctld", "-D", "-f", conf]),
                                             env=self.env, stdout=log, stderr=log))
        for node in self.nodes:
            self.daemons.append(subprocess.Popen(self._on(node, ["slurmd", "-D", "-f", conf, "-N", node]),
                                                 env=self.env, stdout=log, stderr=log))
        for node in self.nodes:
            self._wait(lambda: "idle" in self.scontrol("show", "node", node).lower(),
                       f"node {node} idle")

    def _on(self, node, argv, cwd=None, env=None):
        """argv run on `node`'s host (as it is without VirtualHosts)."""
        if self.hosts is None:
            return argv
        return self.hosts.command(node, argv, cwd, dict(env or {}, SLURM_CONF=self.env["SLURM_CONF"]))

    def client(self, argv, cwd=None, env=None):
        """argv of a Slurm client command (sbatch, scancel, ...) run where it reaches the
        controller, with `env` added; run it with `env=self.env`."""
        if self.hosts is None:
            return ["env", *(f"{k}={v}" for k, v in (env or {}).items()), *argv] if env else argv
        return self._on(self.nodes[0], argv, cwd, env)

    def _wait(self, ready, what, seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ready():
                return
            for p in self.daemons:
                if p.poll() is not None:
                    raise RuntimeError(f"a Slurm test daemon ended (exit {p.returncode}) "
                                       f"before {what}; see {self.dir}/*.log")
            time.sleep(0.2)
        raise RuntimeError(f"{what}: not ready within {seconds} s; see {self.dir}/*.log")

    def scontrol(self, *args):
        return subprocess.run(self.client(["scontrol", *args]), env=self.env, capture_output=True,
                              text=True).stdout

    def job_field(self, job_id, field):
        """A field of `scontrol show job` (e.g. JobState, ExitCode), or None."""
        for word in self.scontrol("show", "job", str(job_id)).split():
            if word.startswith(field + "="):
                return word.split("=", 1)[1]
        return None

    # States a job ends in (others, such as SIGNALING while a --signal is delivered, pass).
    FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                    "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}

    def wait_job(self, job_id, seconds):
        """Waits until the job has ended; returns its final state (None after `seconds`)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            state = self.job_field(job_id, "JobState")
            if state in self.FINAL_STATES:
                return state
            time.sleep(0.3)
        return None

    def close(self):
        """Cancels every job, stops the daemons and removes the folder; safe to call twice."""
        if self.env is not None and self.daemons and self.daemons[-1].poll() is None:
            subprocess.run(self.client(["scancel", "--full", "--user", "root"]), env=self.env,
                           capture_output=True)
        for p in reversed(self.daemons):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.daemons = []
        for pid in _pids_named("slurmstepd") - self._stepd_before:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.dir and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
