"""Shared bits of the fault-injection and integration scripts: checks that report and count."""
import json
import queue
import re
import subprocess
import threading
import time

failures = []


def job_text(job, data, training, styles, loss_network=None, checkpoint=None, distributed=None,
             monitoring=None, sweep=None):
    """The text of a job file, the one way the Python tests write one. Each section is a
    dict written as a flow mapping in JSON (which YAML reads as written: numbers and true/false
    plain, strings quoted), left out when None; loss_network defaults to a random network
    ({"weights": "random:1"}), monitoring to {"listen": "off"}; `styles` is a list of style
    dicts ({"name": ..., "image": ...} and any training keys)."""
    sections = [("job", job), ("data", data),
                ("loss_network", {"weights": "random:1"} if loss_network is None else loss_network),
                ("training", training), ("checkpoint", checkpoint), ("distributed", distributed),
                ("monitoring", {"listen": "off"} if monitoring is None else monitoring),
                ("sweep", sweep)]
    lines = [f"{key}: {json.dumps(value, ensure_ascii=False)}"
             for key, value in sections if value is not None]
    lines.append("styles:")
    lines += [f"  - {json.dumps(style, ensure_ascii=False)}" for style in styles]
    return "\n".join(lines) + "\n"


def write_job(path, **sections):
    """Writes job_text(**sections) to `path`; returns `path`."""
    with open(path, "w") as f:
        f.write(job_text(**sections))
    return path


def check(condition, message):
    """Prints ok/FAIL with the message; a failure is remembered for finish()."""
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        failures.append(message)
    return condition


def finish(name):
    """Prints the closing line and returns the exit code."""
    print(f"{name} {'passed' if not failures else 'failed'}: {len(failures)} failure(s)")
    return 0 if not failures else 1


def run(args, timeout=300):
    """Runs a command; returns (exit code, stdout and stderr together)."""
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout


def run_guarded(cmd, cwd, guard_seconds):
    """Runs `cmd` in `cwd`; returns (exit code, or None when killed after `guard_seconds`,
    seconds taken, stdout and stderr together). The guard only turns a hang into a failure."""
    start = time.time()
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=guard_seconds)
        return p.returncode, time.time() - start, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        return None, time.time() - start, (e.stdout or b"").decode() + (e.stderr or b"").decode()


def check_no_process_left(folder):
    """Checks that no process whose command line names `folder` (a test's work folder) runs."""
    left = subprocess.run(["pgrep", "-f", f"{folder}/"], capture_output=True, text=True).stdout.split()
    return check(not left, f"no process of the test is left: {left}")


def same_tensors(a, b, at_least):
    """(True, summary) when model files `a` and `b` hold the same tensors under the same names,
    bit for bit (their stylefleet.* records may differ), and at least `at_least` of them, so
    that a file that lost its weights cannot pass. Read by Debian's PyTorch in a process of its
    own."""
    code = ("import sys, torch\n"
            "a, b = torch.load(sys.argv[1]), torch.load(sys.argv[2])\n"
            "def tensors(d): return {k for k in d if not k.startswith('stylefleet.')}\n"
            "keys = sorted(tensors(a) | tensors(b))\n"
            "bad = [k for k in keys if k not in a or k not in b or not torch.equal(a[k], b[k])]\n"
            "print(len(keys), 'tensors; differ or held by one file only:', len(bad), bad[:5])\n"
            "sys.exit(1 if bad or len(keys) < int(sys.argv[3]) else 0)\n")
    p = subprocess.run(["/usr/bin/python3", "-c", code, a, b, str(at_least)],
                       capture_output=True, text=True)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


def output_within(process, seconds):
    """The output of `process` once it ends; killed if it runs past `seconds`."""
    try:
        out, _ = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out


def ended_within(process, seconds):
    """(output, True) once `process` ends by itself; (output, False) when it ran past
    `seconds` and was killed. `seconds` only turns a hang into a failure: give it room."""
    try:
        out, _ = process.communicate(timeout=seconds)
        return out, True
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        return out, False


class LineReader:
    """Reads a running process's output (text, stdout=PIPE) on a thread, so that a test can
    wait for a known point of the run (a logged step, a warning) before it acts, instead of
    sleeping and hoping the run got there. Deadlines only turn a hang into a failure."""

    def __init__(self, process):
        self.process = process
        self.lines = []
        self.ended = None  # set by output()
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern, seconds=300):
        """The match of regex `pattern` in the next line that has one, reading on from
        where the last wait stopped; None when the output ends or `seconds` pass first."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                return None
            if line is None:
                self._queue.put(None)  # later waits see the end too
                return None
            match = re.search(pattern, line)
            if match:
                return match

    def discard(self):
        """Forgets the lines read so far (they stay in `lines`): the next wait looks only
        at what comes after this moment, e.g. after a fault the test has just injected."""
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self._queue.put(None)
                return

    def output(self, seconds=300):
        """Everything the process wrote, once it has ended; killed after `seconds` (a hang).
        Afterwards `ended` tells whether it ended by itself."""
        try:
            self.process.wait(timeout=seconds)
            self.ended = True
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self.ended = False
        # A killed launcher's children may hold the pipe open: do not wait for them forever.
        self._thread.join(timeout=30)
        return "".join(self.lines)
