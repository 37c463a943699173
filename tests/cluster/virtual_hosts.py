"""Several "hosts" on this one machine, for multi-host tests (issue 33).

Each host is its own network namespace, linked to the others through a bridge in one more
namespace (the "switch"), with an address on a private subnet, its own host name (a UTS
namespace) and its own mount namespace, in which /etc/hosts names every host and optional
setup lines run (a node-local tmpfs, a read-only bind). Open MPI starts its daemons on them
through an rsh agent (`plm_rsh_agent`) that enters a host instead of ssh-ing into one, and
mpirun itself runs on the first host, so every rank sees real TCP between hosts and a real
per-host placement (local ranks, shared memory only within a host).

Clean-up is total: on leaving the `with` block, on SIGTERM/SIGINT/SIGHUP and at interpreter
exit, every process in a host's network namespace is killed and every namespace (with its
veth links) deleted. A test killed outright (ctest's timeout sends SIGKILL) is cleaned up by
a watchdog process in its own session, which waits for the end of a pipe only the test holds
and then does the same (and removes the folders it was given). Namespaces named after a
process that is gone are removed too, by the next run.

Like ssh, the agent gives a command on a host a fresh environment (PATH and HOME only):
what a launch needs on other hosts must travel the way it would on a cluster (mpirun -x).

Needs root; `available()` says why not where namespaces are not permitted.
"""
import atexit
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

PREFIX = "sfh"  # namespace names: sfh<pid>-<host>; the bridge's: sfh<pid>-switch
SUBNET = "10.77.0"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # as ssh gives root  # /24, private to these namespaces (the machine's own routes never see it)


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _namespaces():
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _kill_processes(ns):
    """SIGKILL to every process in network namespace `ns`, until none is left."""
    for _ in range(50):
        pids = _ip("netns", "pids", ns, check=False).stdout.split()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        time.sleep(0.1)


def _kill_namespace(ns):
    """Kills every process in network namespace `ns`, then deletes it (and its links)."""
    _kill_processes(ns)
    _ip("netns", "del", ns, check=False)


def _remove_tag(tag, folders):
    """Kills every process in the namespaces named `tag`-..., deletes them and the folders."""
    for ns in _namespaces():
        if ns.startswith(tag + "-"):
            _kill_namespace(ns)
    for folder in folders:
        subprocess.run(["rm", "-rf", "--one-file-system", folder])


def _watch(tag, folders):
    """The watchdog: once the test's pipe ends, cleans up; the folders only when the test
    did not say goodbye first (a byte before the end: it cleaned up itself)."""
    said_goodbye = False
    try:
        while True:
            data = os.read(0, 4096)
            if not data:
                break
            said_goodbye = True
    except OSError:
        pass
    _remove_tag(tag, [] if said_goodbye else folders)


def remove_stale():
    """Deletes namespaces of earlier runs whose creating process is gone."""
    for ns in _namespaces():
        match = re.fullmatch(PREFIX + r"(\d+)-.+", ns)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            _kill_namespace(ns)


NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")


def available():
    """None where network, UTS and mount namespaces can be made here; else the reason."""
    if os.geteuid() != 0:
        return "not root: network namespaces need CAP_SYS_ADMIN"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return "ip netns add is not permitted: " + made.stderr.strip()
    _ip("netns", "del", probe, check=False)
    unshared = subprocess.run(["unshare", "--uts", "--mount", "true"], capture_output=True, text=True)
    if unshared.returncode != 0:
        return "unshare --uts --mount is not permitted: " + unshared.stderr.strip()
    return None


class VirtualHosts:
    """`with VirtualHosts(["node-a", "node-b"], setup={"node-b": "mount -t tmpfs tmpfs /x"}) as h:`
    then `h.mpirun([...])` starts a launch across them, `h.command(host, [...])` a command on one,
    `h.kill_host(host)` makes a host die (link down, every process killed, unreachable)."""

    def __init__(self, names, setup=None, also_remove=()):
        """`setup`: shell lines run on a host before each command (as root, in its mount
        namespace); `also_remove`: folders the watchdog removes if the test is killed."""
        self.names = list(names)
        bad = [n for n in self.names if not NAME.fullmatch(n)]
        if bad or len(set(self.names)) != len(self.names) or len(self.names) > 250:
            raise ValueError(f"host names must be distinct, at most 250, lowercase letters, "
                             f"digits and '-': {bad or self.names}")
        self.setup = dict(setup or {})
        self.also_remove = list(also_remove)
        self.hostnames = {}  # set_hostname
        self._watchdog = None
        self.address = {name: f"{SUBNET}.{i + 1}" for i, name in enumerate(self.names)}
        self.tag = f"{PREFIX}{os.getpid()}"
        self.dir = None
        self._old_handlers = {}

    def namespace(self, host):
        return f"{self.tag}-{host}"

    def __enter__(self):
        remove_stale()
        # A namespace with this process's tag is from a dead process that had the same pid.
        _remove_tag(self.tag, [])
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _on_signal(self, signum, frame):
        self.close()
        raise SystemExit(128 + signum)

    def _build(self):
        self.dir = tempfile.mkdtemp(prefix="stylefleet_hosts_")
        self._watchdog = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--watchdog", self.tag, self.dir,
             *self.also_remove], stdin=subprocess.PIPE, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        switch = self.namespace("switch")
        _ip("netns", "add", switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for i, host in enumerate(self.names):
            ns = self.namespace(host)
            _ip("netns", "add", ns)
            # veth names are per namespace: the switch end is port<i>, the host end eth0.
            _ip("link", "add", f"{self.tag}p{i}", "type", "veth", "peer", "name", "eth0",
                "netns", ns)
            _ip("link", "set", f"{self.tag}p{i}", "netns", switch)
            _ip("-n", switch, "link", "set", f"{self.tag}p{i}", "name", f"port{i}")
            _ip("-n", switch, "link", "set", f"port{i}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{self.address[host]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        with open(os.path.join(self.dir, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n")
            for host in self.names:
                f.write(f"{self.address[host]} {host}\n")
        self._write_agent()

    def _write_agent(self):
        # The agent: `agent HOST COMMAND...` runs COMMAND (a shell command line, as ssh would)
        # on HOST. A host that died answers nothing, as ssh to it would fail.
        lines = ["#!/bin/bash", "host=$1; shift",
                 f"if [ -e {shlex.quote(self.dir)}/down-\"$host\" ]; then",
                 "  echo \"ssh: connect to host $host port 22: No route to host\" >&2; exit 255", "fi",
                 "case $host in"]
        for host in self.names:
            setup = self.setup.get(host, "true")
            inner = (f"hostname {self.hostnames.get(host, host)} && mount --bind {shlex.quote(self.dir)}/hosts /etc/hosts "
                     f"&& {{ {setup}\n}} && exec sh -c \"$0\"")
            lines.append(f"  {host}) exec env -i PATH={HOST_PATH} HOME=/root ip netns exec "
                         f"{shlex.quote(self.namespace(host))} unshare --uts --mount "
                         f"--propagation private sh -c {shlex.quote(inner)} \"$*\" ;;")
        lines += ["  *) echo \"virtual hosts: no host named '$host'\" >&2; exit 255 ;;", "esac"]
        self.agent = os.path.join(self.dir, "agent")
        with open(self.agent + ".new", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.agent + ".new", 0o755)
        os.replace(self.agent + ".new", self.agent)

    def set_hostname(self, host, name=None):
        """Commands started on `host` from now on see the host name `name` (None: its own),
        as a machine misconfigured with another's name would."""
        if name is not None and not NAME.fullmatch(name):
            raise ValueError(f"not a host name: {name!r}")
        self.hostnames.pop(host, None)
        if name is not None:
            self.hostnames[host] = name
        self._write_agent()

    def hostfile(self, slots):
        """A hostfile with `slots` slots on every host; returns its path."""
        path = os.path.join(self.dir, f"hostfile-{slots}")
        with open(path, "w") as f:
            for host in self.names:
                f.write(f"{host} slots={slots}\n")
        return path

    def command(self, host, args, cwd=None, env=None):
        """argv that runs `args` on `host` (in `cwd`, default /root; with the variables `env`
        added to the host's fresh environment)."""
        line = "exec " + ("env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " "
                          if env else "") + shlex.join(args)
        if cwd is not None:
            line = f"cd {shlex.quote(cwd)} && {line}"
        return [self.agent, host, line]

    def mpirun_args(self, slots_per_host, np=None):
        """The Open MPI options for a launch over every host (mpirun runs on the first)."""
        subnet = f"{SUBNET}.0/24"
        return ["mpirun", "--allow-run-as-root", "--hostfile", self.hostfile(slots_per_host),
                "-np", str(np if np else slots_per_host * len(self.names)),
                "--mca", "plm_rsh_agent", self.agent, "--mca", "btl_tcp_if_include", subnet,
                "--mca", "oob_tcp_if_include", subnet, "--bind-to", "none"]

    def mpirun(self, slots_per_host, program, cwd, np=None):
        """argv of `mpirun ... program` started on the first host in `cwd`."""
        return self.command(self.names[0], self.mpirun_args(slots_per_host, np) + program, cwd)

    def processes(self, host, program):
        """Pids of the processes on `host` whose command line starts with `program`."""
        pids = _ip("netns", "pids", self.namespace(host), check=False).stdout.split()
        found = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[0] == program.encode():
                        found.append(int(pid))
            except OSError:
                pass
        return found

    def kill_everything(self):
        """Every process on every host killed (after a test's guard ran out: a hung launch)."""
        for host in self.names:
            _kill_processes(self.namespace(host))

    def kill_host(self, host):
        """`host` dies: its link is cut, every process on it is killed at once (SIGKILL), and
        the agent no longer reaches it."""
        open(os.path.join(self.dir, f"down-{host}"), "w").close()
        port = f"port{self.names.index(host)}"
        _ip("-n", self.namespace("switch"), "link", "set", port, "down", check=False)
        _kill_processes(self.namespace(host))

    def close(self):
        """Kills every process on the hosts and deletes every namespace; safe to call twice."""
        for ns in [self.namespace(h) for h in self.names] + [self.namespace("switch")]:
            if ns in _namespaces():
                _kill_namespace(ns)
        if self.dir and os.path.isdir(self.dir):
            subprocess.run(["rm", "-rf", self.dir])
        if self._watchdog is not None:
            self._watchdog.stdin.write(b"bye")  # it finds nothing left and ends
            self._watchdog.stdin.close()
            self._watchdog.wait()
            self._watchdog = None
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers = {}


def leftovers():
    """Namespaces this process made that still exist (a clean-up check for tests)."""
    return [ns for ns in _namespaces() if ns.startswith(f"{PREFIX}{os.getpid()}-")]


if __name__ == "__main__" and len(sys.argv) >= 3 and sys.argv[1] == "--watchdog":
    _watch(sys.argv[2], sys.argv[3:])
