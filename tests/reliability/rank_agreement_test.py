#!/usr/bin/python3
"""Ranks that disagree (ctest labels `reliability`, `mpi`).

For every key the binary lists as rank-invariant (`stylefleet config-reference
--rank-invariant`, derived from the config tables), a 2-rank MPMD launch gives each rank a
different value (`mpirun -np 1 stylefleet train J --set K=a : -np 1 stylefleet train J --set
K=b`; style-entry keys through two job files). Each launch must exit non-zero by itself, not
at a collective timeout (600 s: the launch's hang guard, 240 s, kills it before then, and no
"did not complete" message may appear), and say "ranks disagree on KEY" with both ranks'
values. The same
for a --style given to one rank only and for two content folders of different sizes. A key
the binary lists without a pair of values here fails the test: new keys get covered.

usage: rank_agreement_test.py STYLEFLEET_BINARY
"""
import os
import shutil
import subprocess
import sys
import tempfile

from harness import check, finish, run_guarded, write_job

BINARY = sys.argv[1]
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe"]
# The launch's hang guard: below the job's collective timeout (600 s), so a launch that ends
# only through that timeout is killed and fails, whatever the machine's speed.
HANG_GUARD_SECONDS = 240

# Two valid values per key (rank 0's, rank 1's).
VALUES = {
    "job.name": ("a", "b"),
    "job.output_dir": ("out1", "out2"),
    "job.seed": ("1", "2"),
    "job.styles_at_once": ("1", "2"),
    "job.network": ("per_style", "conditional"),
    "job.base_model": ("m1/model.pt", "m2/model.pt"),  # one conditional model, two paths
    "job.convolution": ("winograd", "direct"),
    "job.predictor_embedding_size": ("100", "99"),
    "job.predictor_layers": ("[conv1_2, conv2_2]", "[conv2_2, conv1_2]"),
    "job.held_out_styles": ("[h0.png]", "[h1.png]"),
    "job.distill_steps": ("1", "2"),
    "data.content_dir": ("photos", "photos32"),
    "data.image_size": ("64", "68"),
    "data.max_image_pixels": ("100000000", "90000000"),
    "data.validation_images": ("[photos/000.png]", "[photos/001.png]"),
    "loss_network.weights": ("random:1", "random:2"),
    "loss_network.content_layers": ("[conv3_3]", "[conv2_2]"),
    "loss_network.style_layers": ("[conv1_2]", "[conv2_2]"),
    "training.content_weight": ("1", "2"),
    "training.style_weight": ("100", "50"),
    "training.tv_weight": ("0", "1"),
    "training.batch_size": ("2", "1"),
    "training.micro_batches": ("1", "2"),
    "training.epochs": ("1", "2"),
    "training.max_steps": ("2", "3"),
    "training.learning_rate": ("0.01", "0.0100000001"),
    "training.log_every_steps": ("5", "3"),
    "training.preview_every_steps": ("10", "0"),
    "training.max_bad_steps": ("10", "3"),
    "training.precision": ("fp32", "bf16"),
    "training.style_image_size": ("64", "32"),
    "training.style_layers": ("[conv1_2]", "[conv2_2]"),
    "training.style_luminance_only": ("false", "true"),
    "checkpoint.every_steps": ("5", "7"),
    "checkpoint.keep": ("3", "2"),
    "distributed.backend": ("auto", "mpi"),
    "distributed.ranks_per_style": ("2", "1"),
    "distributed.bucket_mb": ("25", "0.01"),
    "distributed.check_every_steps": ("5", "0"),
    "distributed.stall_warn_seconds": ("60", "30"),
    "distributed.timeout_seconds": ("600", "300"),
}
# Keys valid only with others set, on both ranks.
ALSO_SET = {"job.base_model": ["--set", "job.network=conditional"],
            "job.distill_steps": ["--set", "job.base_model=m1/model.pt"]}
# Keys valid only in another job file (an arbitrary-style network needs 2 styles).
JOB_FOR = {"job.predictor_embedding_size": "arbitrary.yaml", "job.predictor_layers": "arbitrary.yaml",
           "job.held_out_styles": "arbitrary.yaml", "job.distill_steps": "arbitrary.yaml"}
# Style-entry keys: rank 1 reads a job file whose one style entry differs.
STYLE_ENTRIES = {
    "styles[].name": ("s", "t", "styles.s.name"),
    "styles[].image": ("s0.png", "s1.png", "styles.s.image"),
    "styles[].output_dir": ("o1", "o2", "styles.s.output_dir"),
}
STYLE_DEFAULTS = {"name": "s", "image": "s0.png", "output_dir": "o1"}


def write_two_step_job(path, style, job=None, more_styles=()):
    """A job of one style (a dict of its entry's keys), or more, that trains 2 steps."""
    write_job(path, job=job, data={"content_dir": "photos", "image_size": 64, "loader_threads": 1},
              training={"batch_size": 2, "epochs": 0, "max_steps": 2}, styles=[style, *more_styles],
              monitoring={"listen": "off", "linger_seconds": 0})


def write_fixture(root):
    from PIL import Image  # python3-pil
    for folder, count in (("photos", 16), ("photos32", 32)):
        os.makedirs(os.path.join(root, folder))
        for i in range(count):
            Image.frombytes("RGB", (72, 72), os.urandom(72 * 72 * 3)).save(os.path.join(root, folder, f"{i:03}.png"))
    for name in ("s0.png", "s1.png"):
        Image.new("RGB", (80, 80), (200, 40, 40) if name == "s0.png" else (40, 200, 40)).save(os.path.join(root, name))
    for name in ("h0.png", "h1.png"):  # held-out styles of the arbitrary job
        Image.new("RGB", (80, 80), (40, 40, 200) if name == "h0.png" else (200, 200, 40)).save(os.path.join(root, name))
    write_two_step_job(os.path.join(root, "job.yaml"), STYLE_DEFAULTS)
    write_two_step_job(os.path.join(root, "arbitrary.yaml"), STYLE_DEFAULTS, job={"network": "arbitrary"},
                       more_styles=[{"name": "t", "image": "s1.png", "output_dir": "o3"}])
    # A trained conditional network (one style, 't', one step) for job.base_model: the
    # conditional job adds its style 's'; the arbitrary job has 't' in common to distill.
    write_two_step_job(os.path.join(root, "base.yaml"), {"name": "t", "image": "s1.png"},
                       job={"name": "base", "output_dir": "base_out", "network": "conditional"})
    subprocess.run([BINARY, "train", "base.yaml", "--no-progress", "--threads", "1",
                    "--set", "training.max_steps=1"], cwd=root, check=True, capture_output=True)
    for copy in ("m1", "m2"):
        os.makedirs(os.path.join(root, copy))
        shutil.copy(os.path.join(root, "base_out", "conditional", "model.pt"), os.path.join(root, copy))


def launch(root, args0, args1):
    """Runs the MPMD launch; returns (exit code, seconds, output)."""
    cmd = MPIRUN + ["-np", "1", BINARY, "train"] + args0 + ["--no-progress", ":",
                    "-np", "1", BINARY, "train"] + args1 + ["--no-progress"]
    return run_guarded(cmd, root, HANG_GUARD_SECONDS)


def expect_disagreement(root, what, args0, args1, needle):
    code, seconds, out = launch(root, args0, args1)
    ok = (code not in (0, None) and "did not complete within" not in out and needle in out
          and "rank 0" in out and "rank 1" in out)
    check(ok, f"{what}: exit {code} after {seconds:.1f} s, names '{needle}'" + ("" if ok else "\n" + out[-1500:]))


def main():
    keys = subprocess.run([BINARY, "config-reference", "--rank-invariant"], capture_output=True,
                          text=True, check=True).stdout.split()
    check(len(keys) > 20, f"the binary lists {len(keys)} rank-invariant keys")
    uncovered = [k for k in keys if k not in VALUES and k not in STYLE_ENTRIES]
    check(not uncovered, f"every rank-invariant key has a pair of values here (missing: {uncovered})")
    with tempfile.TemporaryDirectory() as root:
        write_fixture(root)
        for key in keys:
            if key in VALUES:
                a, b = VALUES[key]
                also = ALSO_SET.get(key, [])
                job = JOB_FOR.get(key, "job.yaml")
                expect_disagreement(root, key, [job, "--set", f"{key}={a}"] + also,
                                    [job, "--set", f"{key}={b}"] + also,
                                    f"ranks disagree on {key}: ")
            elif key in STYLE_ENTRIES:
                _, b, shown = STYLE_ENTRIES[key]
                field = key.split(".")[1]
                write_two_step_job(os.path.join(root, "job_b.yaml"), dict(STYLE_DEFAULTS, **{field: b}))
                expect_disagreement(root, key, ["job.yaml"], ["job_b.yaml"], f"ranks disagree on {shown}")
        expect_disagreement(root, "--style on one rank only", ["job.yaml", "--style", "s"], ["job.yaml"],
                            "ranks disagree on the styles selected with --style: rank 0 has 's'; rank 1 has 'all'")
        expect_disagreement(root, "content folders of 16 and 32 photos", ["job.yaml", "--content", "photos"],
                            ["job.yaml", "--content", "photos32"], "ranks disagree on data.content_dir: ")
        code, seconds, out = launch(root, ["job.yaml"], ["job.yaml"])
        check(code == 0, f"agreeing ranks train: exit {code} after {seconds:.1f} s" + ("" if code == 0 else "\n" + out[-1500:]))
    return finish("rank_agreement_test")


if __name__ == "__main__":
    sys.exit(main())
