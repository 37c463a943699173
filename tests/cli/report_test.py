#!/usr/bin/python3
"""`stylefleet report` end to end: trains a tiny two-style job, writes the report, and checks
the page as a browser would see it: every run has its charts and previews, every image is an
inline PNG that decodes to the preview's pixels, nothing is fetched from anywhere, and a run
that is still being written (a torn metrics.jsonl line) is reported, not an error.

  python3 tests/cli/report_test.py build/stylefleet SOURCE_DIR
"""
import base64
import fcntl
import html.parser
import io
import os
import shutil
import subprocess
import sys
import tempfile

from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reliability"))
from harness import write_job  # noqa: E402

BINARY, SOURCE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def main():
    work = tempfile.mkdtemp(prefix="stylefleet_report_")
    try:
        job = write_job(
            os.path.join(work, "job.yaml"),
            job={"name": "tiny", "output_dir": f"{work}/out", "seed": 3},
            data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 64, "loader_threads": 1},
            training={"batch_size": 2, "epochs": 0, "max_steps": 4, "log_every_steps": 1,
                      "preview_every_steps": 2},
            checkpoint={"every_steps": 100},
            styles=[{"image": f"{SOURCE}/configs/data/styles/{s}.jpg"} for s in ("candy", "mosaic")])
        train = subprocess.run([BINARY, "train", job, "--no-progress", "--threads", "1"],
                               capture_output=True, text=True)
        check(train.returncode == 0, f"tiny job trained (exit {train.returncode}) {train.stderr[-400:]}")
        job_dir = os.path.join(work, "out")
        # The job file stands for its output folder.
        report = subprocess.run([BINARY, "report", job], capture_output=True, text=True)
        page_path = os.path.join(job_dir, "report.html")
        check(report.returncode == 0 and page_path in report.stdout,
              f"report exits 0 and names {page_path}: {report.stdout.strip()} {report.stderr.strip()}")
        text = open(page_path, encoding="utf-8").read()
        page = Page()
        page.feed(text)
        tags = page.tags
        check(sum(1 for t, a in tags if t == "section") == 2, "one section per style")
        for number, style in enumerate(("candy", "mosaic"), 1):
            check(any(t == "section" and a.get("id") == f"run-{number}-{style}" for t, a in tags),
                  f"section run-{number}-{style}")
        check(sum(1 for t, _ in tags if t == "svg") == 14, "seven charts per run")
        check(sum(1 for t, _ in tags if t == "polyline") >= 12,
              "the loss, layer and speed charts have lines (4 logged steps)")
        images = [a["src"] for t, a in tags if t == "img"]
        # Per run: the contact sheet's latest preview and the strip (steps 2 and 4).
        check(len(images) == 6, f"6 inline images ({len(images)})")
        for src in images:
            check(src.startswith("data:image/png;base64,"), "image is inline PNG data")
        preview = Image.open(os.path.join(job_dir, "candy", "previews", "step-00000004.png"))
        decoded = [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))) for s in images]
        check(any(d.size == preview.size and d.tobytes() == preview.tobytes() for d in decoded),
              "an inline image has exactly the pixels of candy's latest preview")
        external = [(t, a) for t, a in tags
                    if t in ("script", "link", "iframe", "object", "embed")
                    or any(k in ("src", "href") and not (v.startswith("data:") or v.startswith("#"))
                           for k, v in a.items())]
        check(not external, f"nothing fetched from outside the page: {external[:3]}")
        check("url(" not in text and "@import" not in text, "no style sheet fetches")
        check("step 4 of 4, finished" in text, "the runs are shown as finished")

        # A record being written while the report reads: the page still comes, and says so.
        with open(os.path.join(job_dir, "mosaic", "metrics.jsonl"), "a") as f:
            f.write('{"step": 5, "total_lo')
        os.remove(os.path.join(job_dir, "mosaic", "model.pt"))
        # candy resumed (with a larger max_steps, say): its last line still says "step 4 of 4",
        # but `train` holds its folder's lock, as this test does here.
        with open(os.path.join(job_dir, "candy", "stylefleet.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            again = subprocess.run([BINARY, "report", job_dir, "--output",
                                    os.path.join(work, "r2.html")], capture_output=True, text=True)
        text = open(os.path.join(work, "r2.html"), encoding="utf-8").read()
        check(again.returncode == 0 and "not whole records" in text,
              "a torn last record is skipped and named")
        check("step 4 of 4, stopped, not finished" in text,
              "a run without its model is shown as stopped")
        check("step 4 of 4, training, ETA" in text and "step 4 of 4, finished" not in text,
              "a run whose folder lock is held is shown as training, with its ETA")

        empty = os.path.join(work, "empty")
        os.makedirs(empty)
        none = subprocess.run([BINARY, "report", empty], capture_output=True, text=True)
        check(none.returncode == 1 and "no training runs here" in none.stderr,
              f"a folder without runs: exit 1 and why ({none.returncode}: {none.stderr.strip()})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("report test: " + ("ok" if not failures else f"{len(failures)} failure(s)"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
