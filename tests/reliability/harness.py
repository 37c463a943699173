"""Shared bits of the fault-injection and integration scripts: checks that report and count."""
import subprocess
import sys

failures = []


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


def output_within(process, seconds):
    """The output of `process` once it ends; killed if it runs past `seconds`."""
    try:
        out, _ = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out
