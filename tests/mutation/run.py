#!/usr/bin/env python3
"""Mutation check: do the tests notice small wrong changes to the sources?

Applies each mutant of tests/mutation/mutants.txt (one small wrong change: a
loss normalisation, an optimizer constant, an offset, a dropped field...) to a
scratch copy of the sources, one at a time, rebuilds only the targets it names,
runs the tests it names and prints a Markdown table:

  CAUGHT            a test failed (or timed out)
  CAUGHT (build)    the mutant does not compile (prefer mutants that do)
  MISSED            the tests passed: a gap in the tests, or an equivalent mutant
  STALE             the original text is absent or occurs more than once in its
                    file: the list no longer matches the code and needs updating
  TIMEOUT (build)   the build did not finish in time: nothing was judged

Exit status 0 only when every mutant selected was caught.

The scratch copy (default /tmp/stylefleet-mutation, --work) holds every file
of HEAD (another commit with --revision, the working tree's tracked and
untracked-but-not-ignored files with --working-tree) in src/, with its file
modes (launch/mpirun.sh stays executable), and its own build folder in build/;
it is kept between runs, so a rerun rebuilds only what changed, and ccache
(CCACHE_BASEDIR is the source folder) makes its first build mostly cache hits.
Before the mutants, the unmutated copy is built and every test command is run
once, all of them even when one fails: the baseline then names the failing
tests of each failing command with the last lines of its output, and stops the
check before any mutant (a mutant "caught" by a test that fails anyway proves
nothing); --no-baseline skips it.

The CPU lock (/tmp/stylefleet-cpu.lock, flock) is held for each mutant's
build and tests, not for the whole run, so other work interleaves.

Usage:
  tests/mutation/run.py                 all mutants
  tests/mutation/run.py ID [ID...]      some of them
  tests/mutation/run.py --list          ids and descriptions
Options: --timeout S (per mutant, build and tests; default 1200), --work DIR,
--revision REV, --working-tree, --no-baseline, --jobs N, --lock FILE, --table FILE (also write
the Markdown table there), --mutants FILE (another list in the same format).
"""

import argparse
import datetime
import fcntl
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIELDS = ("file", "build", "run", "about")
BASELINE_TAIL_LINES = 30  # of each failing baseline command's output


class Mutant:
    def __init__(self, ident, line):
        self.id = ident
        self.line = line
        self.file = self.build = self.run = self.about = ""
        self.original = self.replacement = None


def parse_mutants(path):
    """Blocks of:  [id] / key: value lines / <<< original === replacement >>>."""
    mutants, current, mode, lines = [], None, None, []
    with open(path) as f:
        for number, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if mode in ("original", "replacement"):
                if line == "===" and mode == "original":
                    current.original, mode, lines = "\n".join(lines) + "\n", "replacement", []
                elif line == ">>>" and mode == "replacement":
                    current.replacement, mode, lines = "\n".join(lines) + "\n", None, []
                    if current.replacement == "\n":
                        current.replacement = ""
                else:
                    lines.append(line)
                continue
            if not line.strip() or line.startswith("#"):
                continue
            m = re.fullmatch(r"\[([a-z0-9-]+)\]", line)
            if m:
                current = Mutant(m.group(1), number)
                mutants.append(current)
                continue
            if current is None:
                sys.exit(f"{path}:{number}: text before the first [id]")
            if line == "<<<":
                mode, lines = "original", []
                continue
            key, sep, value = line.partition(":")
            if not sep or key not in FIELDS:
                sys.exit(f"{path}:{number}: expected one of {', '.join(FIELDS)}, <<<, or [id]")
            setattr(current, key, value.strip())
    if mode is not None:
        sys.exit(f"{path}: the last block is not closed with >>>")
    seen = set()
    for m in mutants:
        missing = [k for k in FIELDS if not getattr(m, k)]
        if missing or m.original is None or m.replacement is None:
            sys.exit(f"{path}:{m.line}: [{m.id}] lacks {', '.join(missing) or 'its <<< === >>> block'}")
        if m.id in seen:
            sys.exit(f"{path}:{m.line}: duplicate id {m.id}")
        if m.original == m.replacement:
            sys.exit(f"{path}:{m.line}: [{m.id}] changes nothing")
        seen.add(m.id)
    return mutants


@contextmanager
def cpu_lock(path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_command(command, cwd, timeout, env=None):
    """Runs `command` (a list, or a string for bash) in its own process group.
    Returns (exit code or None on timeout, output)."""
    args = ["bash", "-c", command] if isinstance(command, str) else command
    with tempfile.TemporaryFile(mode="w+") as out:
        p = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        try:
            code = p.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            code = None
        except BaseException:  # interrupted: leave no build or test running
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
        out.seek(0)
        return code, out.read()


def sync_tree(source_files, dest):
    """Makes `dest` hold exactly `source_files` ({relative path: (bytes, mode)}),
    rewriting only files whose content differs (unchanged files keep their
    mtime, so the build stays incremental) and giving each file its mode: tests
    run scripts of the tree (launch/mpirun.sh) that must stay executable."""
    os.makedirs(dest, exist_ok=True)
    for rel, (data, mode) in source_files.items():
        path = os.path.join(dest, rel)
        try:
            with open(path, "rb") as f:
                same = f.read() == data
        except OSError:
            same = False
        if not same:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        if os.stat(path).st_mode & 0o7777 != mode:
            os.chmod(path, mode)
    for root, dirs, files in os.walk(dest):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), dest)
            if rel not in source_files:
                os.remove(os.path.join(root, name))


def revision_files(revision):
    """{path: (bytes, mode)} of every file of `revision`; git records only whether a
    file is executable (mode 100755), which becomes 0o755, the rest 0o644."""
    listing = subprocess.run(["git", "-C", REPO, "ls-tree", "-r", "-z", revision],
                             check=True, capture_output=True).stdout
    files = {}
    for entry in filter(None, listing.decode().split("\0")):
        info, rel = entry.split("\t", 1)
        git_mode, kind, _ = info.split()
        if kind != "blob":  # a submodule: the tests read none
            continue
        data = subprocess.run(["git", "-C", REPO, "show", f"{revision}:{rel}"], check=True,
                              capture_output=True).stdout
        files[rel] = (data, 0o755 if git_mode == "100755" else 0o644)
    return files


def working_tree_files():
    listing = subprocess.run(
        ["git", "-C", REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True).stdout
    files = {}
    for rel in filter(None, listing.decode().split("\0")):
        path = os.path.join(REPO, rel)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                files[rel] = (f.read(), os.stat(path).st_mode & 0o7777)
    return files


def failures(output):
    """The names of what failed, for the table: gtest and ctest lines."""
    names = []
    for pattern in (r"^\[  FAILED  \] ([\w/.]+)(?: \(| *$)", r"\d+ - (\S+) \(Failed\)"):
        for name in re.findall(pattern, output, re.M):
            if name not in names:
                names.append(name)
    return names


class Checker:
    def __init__(self, args):
        self.args = args
        self.src = os.path.join(args.work, "src")
        self.build = os.path.join(args.work, "build")
        self.env = dict(os.environ, BUILD=self.build, SOURCE=self.src)

    def configure(self):
        code, out = run_command(["cmake", "-S", self.src, "-B", self.build,
                                 "-DCMAKE_BUILD_TYPE=Release"], self.src, 900)
        if code != 0:
            sys.exit("configuring the scratch copy failed:\n" + out[-4000:])

    def build_targets(self, targets, timeout):
        return run_command(["cmake", "--build", self.build, "-j", str(self.args.jobs), "--target"]
                           + targets.split(), self.src, timeout)

    def run_tests(self, command, timeout):
        return run_command(command, os.path.join(self.build, "tests"), timeout, self.env)

    def baseline(self, mutants):
        targets = " ".join(sorted({t for m in mutants for t in m.build.split()}))
        commands = list(dict.fromkeys(m.run for m in mutants))
        print(f"baseline: building {targets}; {len(commands)} test command(s)", flush=True)
        with cpu_lock(self.args.lock):
            code, out = self.build_targets(targets, 3 * self.args.timeout)
            if code != 0:
                sys.exit("the unmutated copy does not build:\n" + out[-4000:])
            failed = []
            for command in commands:
                start = time.time()
                code, out = self.run_tests(command, self.args.timeout)
                status = "ok" if code == 0 else "timeout" if code is None else f"exit {code}"
                print(f"  {time.time() - start:6.1f} s  {status:8}  {command}", flush=True)
                if code != 0:
                    failed.append((command, status, out))
        # Every command ran: the report names each failing test with the end of its output.
        if failed:
            print(f"\nbaseline fails: {len(failed)} of {len(commands)} test command(s) fail on "
                  "the unmutated copy", flush=True)
            for command, status, out in failed:
                names = failures(out)
                print(f"\n--- {command} ({status}); failing: {', '.join(names) or 'no test named'}")
                print("\n".join(out.rstrip().splitlines()[-BASELINE_TAIL_LINES:]), flush=True)
            sys.exit(f"baseline fails ({len(failed)} command(s)): fix them or pass --no-baseline")

    def check(self, m):
        path = os.path.join(self.src, m.file)
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            return "STALE", "file missing", 0.0
        count = text.count(m.original)
        if count != 1:
            return "STALE", f"original text found {count} times", 0.0
        with cpu_lock(self.args.lock):
            start = time.time()
            with open(path, "w") as f:
                f.write(text.replace(m.original, m.replacement))
            try:
                code, out = self.build_targets(m.build, self.args.timeout)
                if code is None:
                    return "TIMEOUT (build)", "", time.time() - start
                if code != 0:
                    errors = re.findall(r"error: (.*)", out)
                    return "CAUGHT (build)", (errors[0] if errors else "")[:80], time.time() - start
                left = self.args.timeout - (time.time() - start)
                code, out = self.run_tests(m.run, left)
                elapsed = time.time() - start
                if code is None:
                    return "CAUGHT", "timeout", elapsed
                if code != 0:
                    names = failures(out)
                    shown = ", ".join(names[:2]) + (f" +{len(names) - 2}" if len(names) > 2 else "")
                    return "CAUGHT", shown or f"exit {code}", elapsed
                return "MISSED", "", elapsed
            finally:
                with open(path, "w") as f:
                    f.write(text)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ids", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--mutants", default=os.path.join(HERE, "mutants.txt"))
    parser.add_argument("--timeout", type=float, default=1200,
                        help="seconds per mutant, build and tests (default 1200)")
    parser.add_argument("--work", default="/tmp/stylefleet-mutation")
    parser.add_argument("--revision", default="HEAD",
                        help="the commit whose sources are mutated (default HEAD)")
    parser.add_argument("--working-tree", action="store_true",
                        help="mutate the working tree's files instead of a commit's")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--lock", default="/tmp/stylefleet-cpu.lock")
    parser.add_argument("--table", help="also write the Markdown table to this file")
    args = parser.parse_args()

    mutants = parse_mutants(args.mutants)
    if args.list:
        for m in mutants:
            print(f"{m.id:28} {m.file:36} {m.about}")
        return 0
    unknown = [i for i in args.ids if i not in {m.id for m in mutants}]
    if unknown:
        sys.exit("unknown mutant id(s): " + ", ".join(unknown))
    if args.ids:
        mutants = [m for m in mutants if m.id in args.ids]

    started = time.time()
    checker = Checker(args)
    # SIGTERM as Ctrl-C: the mutated file is restored on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sync_tree(working_tree_files() if args.working_tree else revision_files(args.revision),
              checker.src)
    revision = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", args.revision],
                              capture_output=True, text=True).stdout.strip()
    with cpu_lock(args.lock):
        checker.configure()
    if not args.no_baseline:
        checker.baseline(mutants)

    rows = []
    for n, m in enumerate(mutants, 1):
        result, detail, seconds = checker.check(m)
        rows.append((m, result, detail, seconds))
        print(f"[{n}/{len(mutants)}] {m.id}: {result}" + (f" ({detail})" if detail else "") +
              f", {seconds:.0f} s", flush=True)

    caught = sum(r.startswith("CAUGHT") for _, r, _, _ in rows)
    wall = time.time() - started
    table = ["| mutant | file | wrong change | result | caught by | s |",
             "|---|---|---|---|---|---|"]
    for m, result, detail, seconds in rows:
        table.append(f"| {m.id} | {m.file} | {m.about} | {result} | {detail} | {seconds:.0f} |")
    summary = (f"{caught} of {len(rows)} mutants caught"
               f" ({sum(r == 'MISSED' for _, r, _, _ in rows)} missed,"
               f" {sum(r == 'STALE' for _, r, _, _ in rows)} stale,"
               f" {sum(r.startswith('TIMEOUT') for _, r, _, _ in rows)} timed out building);"
               f" {datetime.datetime.utcnow():%Y-%m-%d} UTC, {revision}"
               f"{' + working tree' if args.working_tree else ''}, {cpu_name()},"
               f" {os.cpu_count()} cores, wall {wall / 60:.0f} min")
    text = "\n".join(table) + "\n\n" + summary + "\n"
    print("\n" + text)
    if args.table:
        with open(args.table, "w") as f:
            f.write(text)
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
