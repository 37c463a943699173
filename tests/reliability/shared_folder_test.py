#!/usr/bin/python3
"""Shared storage is checked, not assumed (ctest labels `reliability`, `mpi`; issue 33).

Every rank of a launch must see the output folder at the same path on a shared file system:
a group root on another host writes its styles' checkpoints and models there. Two "hosts" on
this machine: rank 0 runs here; rank 1 runs in its own UTS and mount namespaces (`unshare`),
with its own host name, and sees at the output folder's path

- a private tmpfs (a node-local folder where the shared one should be): before this check the
  job trained with exit 0 and rank 1's outputs went to a folder nobody else could read;
- the shared folder mounted read-only (a host that cannot write it);
- the shared folder itself (the control): it trains, and the check leaves no file behind, also
  when the output folder does not exist yet (the check writes in its nearest existing parent
  and creates nothing).

The first two must end by themselves (not at a collective timeout), exit 2, name rank 1, its
host and what is wrong, and leave the output folder as it was: nothing trained or claimed.
Needs root (namespaces and mounts); skipped (exit 77) where `unshare` is not permitted.

usage: shared_folder_test.py STYLEFLEET_BINARY
"""
import os
import shlex
import socket
import subprocess
import sys
import tempfile

from harness import check, finish, run_guarded, write_job

BINARY = os.path.abspath(sys.argv[1])
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe"]
HANG_GUARD_SECONDS = 240  # below the job's collective timeout (600 s)
OTHER_HOST = "sf-host-b"
TOKEN_PREFIX = ".stylefleet-shared-check"


def write_fixture(root, output_dir):
    from PIL import Image  # python3-pil
    os.makedirs(os.path.join(root, "photos"))
    for i in range(8):
        Image.frombytes("RGB", (72, 72), os.urandom(72 * 72 * 3)).save(
            os.path.join(root, "photos", f"{i:03}.png"))
    Image.new("RGB", (80, 80), (200, 40, 40)).save(os.path.join(root, "s.png"))
    write_job(os.path.join(root, "job.yaml"),
              job={"name": "shared", "output_dir": output_dir},
              data={"content_dir": "photos", "image_size": 64, "loader_threads": 1},
              training={"batch_size": 2, "epochs": 0, "max_steps": 1},
              distributed={"ranks_per_style": 2},
              monitoring={"listen": "off", "linger_seconds": 0},
              styles=[{"name": "s", "image": "s.png"}])


def launch(root, rank1_setup):
    """Rank 0 here; rank 1 in new UTS and mount namespaces after the shell lines `rank1_setup`.
    Returns (exit code or None after the hang guard, seconds, output)."""
    train = [BINARY, "train", "job.yaml", "--no-progress", "--threads", "1"]
    script = f"hostname {OTHER_HOST} && {rank1_setup} && exec {shlex.join(train)}"
    cmd = MPIRUN + ["-np", "1"] + train + [":", "-np", "1", "unshare", "--uts", "--mount",
                                          "--propagation", "private", "sh", "-c", script]
    return run_guarded(cmd, root, HANG_GUARD_SECONDS)


def files_under(folder):
    found = []
    for where, _, names in os.walk(folder):
        found += [os.path.relpath(os.path.join(where, n), folder) for n in names]
    return sorted(found)


def expect_refused(root, what, rank1_setup, needles):
    before = files_under(root)
    code, seconds, out = launch(root, rank1_setup)
    named = [n for n in needles if n not in out]
    check(code == 2 and "did not complete within" not in out and not named,
          f"{what}: exit {code} after {seconds:.1f} s, names {needles}" +
          ("" if code == 2 and not named else f" (missing: {named})\n" + out[-2000:]))
    after = files_under(root)
    check(after == before, f"{what}: nothing written or claimed (new: {sorted(set(after) - set(before))}, "
                           f"gone: {sorted(set(before) - set(after))})")


def main():
    if subprocess.run(["unshare", "--uts", "--mount", "true"], capture_output=True).returncode != 0:
        print("skipped: unshare --uts --mount is not permitted here (needs root)")
        return 77
    here = socket.gethostname()
    with tempfile.TemporaryDirectory() as root:
        write_fixture(root, "out")
        out_dir = os.path.join(root, "out")
        os.makedirs(out_dir)
        expect_refused(root, "a private folder on rank 1's host", "mount -t tmpfs tmpfs out",
                       [f"output folder {out_dir} is not one writable folder on every rank: ", f"rank 1 (host {OTHER_HOST})", f"rank 0 (host {here})",
                        "shared file system"])
        expect_refused(root, "the shared folder read-only on rank 1's host",
                       "mount --bind out out && mount -o remount,bind,ro out",
                       [f"rank 1 (host {OTHER_HOST}) cannot write in {out_dir}: Read-only file system"])
        code, seconds, out = launch(root, "true")
        check(code == 0, f"the same folder on both hosts trains: exit {code} after {seconds:.1f} s" +
              ("" if code == 0 else "\n" + out[-2000:]))
        check(os.path.exists(os.path.join(root, "out", "s", "model.pt")), "its model is written")
        check(f"output folder {out_dir} is shared by the 2 ranks" in out, "the check says what it proved")
    with tempfile.TemporaryDirectory() as root:
        write_fixture(root, "new/out")
        code, seconds, out = launch(root, "true")
        check(code == 0, f"an output folder that does not exist yet: exit {code} after {seconds:.1f} s" +
              ("" if code == 0 else "\n" + out[-2000:]))
        left = [f for f in files_under(root) if TOKEN_PREFIX in f]
        check(not left, f"no check file is left behind ({left})")
    return finish("shared_folder_test")


if __name__ == "__main__":
    sys.exit(main())
