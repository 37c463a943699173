#!/usr/bin/python3
"""What a new user hits (issue 13), through the real binary; one ctest per part.

usage: user_paths_test.py STYLEFLEET_BINARY SOURCE_DIR PART
  check     `check` refuses what `train` would (empty content folder, a folder of another job),
            `train --style nosuch` stops before serving metrics or writing a file, `check`
            prints styles trained together as one pass, and ends at the first SIGTERM
  losses    `losses --job` honours --style NAME and --image-size
  lock      a second run on the same style folders fails naming the holder (while the holder
            still trains: it never waits for it); SIGKILL frees it
  settings  resuming with changed settings: refused with a diff (exit 2) unless safe or allowed
  port      a taken metrics port falls back to a free one (targets file), or fails when strict
  linger    no linger without scrapes; with a scraper, it ends at the first scrape after the end
Nothing checks a speed: linger_seconds (600) lies past the hang guards (300 s), so a run that
lingered or waited for a lock fails by its guard, however fast or loaded the machine is.
  push      a failed push says what failed (connection refused to host:port)
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from harness import check, finish, output_within
import harness

BINARY, SOURCE = sys.argv[1], sys.argv[2]
CONTENT = os.path.join(SOURCE, "configs/data/content")
STYLES = os.path.join(SOURCE, "configs/data/styles")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_job(work, name="users", steps=2, monitoring=None, styles=("wave",), content=CONTENT,
              job_keys=None, style_keys=None):
    """A job of shipped style images (their names) that trains `steps` steps, a checkpoint each;
    `job_keys` more keys of its job section, `style_keys` more keys of a style's entry by name."""
    return harness.write_job(
        os.path.join(work, f"{name}.yaml"),
        job=dict({"name": name, "output_dir": f"{work}/out", "seed": 5}, **(job_keys or {})),
        data={"content_dir": content, "image_size": 64, "loader_threads": 1},
        loss_network={"weights": "random:2"},
        training={"batch_size": 1, "epochs": 0, "max_steps": steps, "log_every_steps": 1,
                  "preview_every_steps": 0},
        checkpoint={"every_steps": 1, "keep": 2}, monitoring=monitoring,
        styles=[dict({"image": f"{STYLES}/{s}.jpg"}, **(style_keys or {}).get(s, {})) for s in styles])


def run(args, timeout=300):
    """Exit code (None when it ran past `timeout` and was killed), output, seconds."""
    start = time.time()
    try:
        r = subprocess.run([BINARY] + args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
        return None, out, time.time() - start
    return r.returncode, r.stdout + r.stderr, time.time() - start


def train(job, *more, timeout=300):
    return run(["train", job, "--no-progress", "--threads", "1"] + list(more), timeout)


def part_check(work):
    empty = os.path.join(work, "empty")
    os.makedirs(empty)
    job = write_job(work, content=empty)
    rc, out, _ = run(["check", job])
    check(rc == 2 and "holds no .jpg" in out, f"check: empty content folder exits 2 ({rc}): {out[-300:]}")
    job = write_job(work)
    os.makedirs(os.path.join(work, "out/wave"))
    with open(os.path.join(work, "out/wave/stylefleet.json"), "w") as f:
        json.dump({"job": "someone_else", "style": "wave"}, f)
    rc, out, _ = run(["check", job])
    check(rc == 2 and "belongs to style 'wave' of job 'someone_else'" in out,
          f"check: a folder of another job exits 2 ({rc}): {out[-300:]}")
    shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
    port = free_port()
    job = write_job(work, monitoring={"listen": f"127.0.0.1:{port}"}, styles=("wave", "candy"))
    rc, out, _ = train(job, "--style", "nosuch")
    check(rc == 2 and "--style nosuch: no style or sweep run of the job has this name or matches it; its styles: wave, candy" in out,
          f"train --style nosuch exits 2 listing the styles ({rc}): {out[-300:]}")
    check("metrics on" not in out and not os.path.exists(os.path.join(work, "out")),
          "... before the metrics server started or any file was written")
    job = write_job(work, styles=("wave", "candy", "mosaic"), job_keys={"styles_at_once": 2})
    rc, out, _ = run(["check", job])
    check(rc == 0 and "wave + candy (together on the same batches, batch 1 x 1 = 1) -> mosaic" in out,
          f"check prints a styles_at_once pass as trained together ({rc}): {out[-400:]}")
    # Only `train` stops at a step boundary: `check` stuck reading a FIFO as its hostfile ends
    # at the first SIGTERM (it used to need a second one).
    fifo = os.path.join(work, "hosts.fifo")
    os.mkfifo(fifo)
    p = subprocess.Popen([BINARY, "check", job, "--hostfile", fifo], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    check(p.returncode == -signal.SIGTERM, f"check ends at the first SIGTERM (exit {p.returncode})")


def part_losses(work):
    job = write_job(work, styles=("wave", "candy"), style_keys={"candy": {"style_weight": 7.5}})
    content = os.path.join(CONTENT, "0000.jpg")
    rc, out, _ = run(["losses", "--job", job, "--content", content, "--style", "candy",
                      "--image-size", "96"])
    doc = json.loads(out[out.index("{"):]) if rc == 0 else {}
    check(rc == 0 and doc.get("weights", {}).get("style") == 7.5 and doc.get("image_size") == 96
          and doc.get("style_image", "").endswith("candy.jpg"),
          f"losses --job --style candy --image-size 96 uses candy's weights and 96 px ({rc}): "
          f"{doc.get('weights')} {doc.get('image_size')} {doc.get('style_image')}")
    rc, out, _ = run(["losses", "--job", job, "--content", content, "--style", "wave"])
    doc = json.loads(out[out.index("{"):]) if rc == 0 else {}
    check(rc == 0 and doc.get("weights", {}).get("style") == 100 and doc.get("image_size") == 64,
          f"losses --job --style wave: the job's image size and wave's weights ({rc})")
    # A style's own layers and style image size are the ones its training uses
    # (the job's were used once).
    write_job(work, styles=("wave", "candy"), style_keys={
        "candy": {"style_weight": 7.5, "style_layers": ["conv3_3"], "style_image_size": 32}})
    rc, out, _ = run(["losses", "--job", job, "--content", content, "--style", "candy"])
    doc = json.loads(out[out.index("{"):]) if rc == 0 else {}
    check(rc == 0 and list(doc.get("style_loss_by_layer", {})) == ["conv3_3"]
          and doc.get("style_image_size") == 32 and doc.get("image_size") == 64,
          f"losses --job --style candy uses candy's style_layers and style_image_size ({rc}): "
          f"{doc.get('style_loss_by_layer')} {doc.get('style_image_size')}")
    rc, out, _ = run(["losses", "--job", job, "--content", content, "--style", "nosuch"])
    check(rc == 2 and "its styles: wave, candy" in out, f"losses --style nosuch exits 2 ({rc}): {out[-200:]}")


def part_lock(work):
    job = write_job(work, steps=100000, styles=("wave", "candy"))
    first = subprocess.Popen([BINARY, "train", job, "--no-progress", "--threads", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoints = os.path.join(work, "out/wave/checkpoints")
    deadline = time.time() + 300
    while time.time() < deadline and not (os.path.isdir(checkpoints) and os.listdir(checkpoints)):
        time.sleep(0.2)
    # The holder trains 100000 steps: a second run that waited for the lock would run into
    # its hang guard (rc None), so ending with exit 1 while the holder runs is "at once".
    rc, out, seconds = train(job, "--style", "candy", timeout=300)
    check(rc == 1 and first.poll() is None and f"pid {first.pid}" in out and "in use by another run" in out
          and socket.gethostname() in out,
          f"a second run exits 1 while the holder trains ({seconds:.1f} s), naming host and pid ({rc}): {out[-400:]}")
    with open(os.path.join(work, "out/wave/metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f if line.strip()]
    check(len(steps) == len(set(steps)), "metrics.jsonl has each step once")
    first.send_signal(signal.SIGKILL)
    first.wait()
    rc, out, _ = train(job, "--set", "training.max_steps=1")
    check(rc == 0, f"after SIGKILL of the holder the folders are free again ({rc}): {out[-300:]}")


def part_settings(work):
    job = write_job(work, steps=2)
    rc, out, _ = train(job)
    check(rc == 0, f"first run ({rc})")
    rc, out, _ = train(job, "--set", "data.image_size=96", "--set", "styles.wave.style_weight=50",
                       "--set", "training.max_steps=4")
    refused = out[out.find("settings changed since"):out.find("restore them")]
    check(rc == 2 and "data.image_size: 64 -> 96" in refused
          and "styles.wave.style_weight: 100 -> 50" in refused and "--allow-changed-settings" in out,
          f"changed image size and style weight are refused with a diff, exit 2 ({rc}): {out[-600:]}")
    check("max_steps" not in refused and "styles.wave.max_steps: 2 -> 4" in out,
          "... while the changed max_steps is only reported as safe")
    rc, out, _ = run(["check", job, "--set", "data.image_size=96"])
    check(rc == 2 and "data.image_size: 64 -> 96" in out, f"check refuses it too ({rc})")
    rc, out, _ = train(job, "--set", "training.max_steps=3", "--set", "training.log_every_steps=2")
    check(rc == 0 and "resuming from" in out and "max_steps: 2 -> 3" in out,
          f"max_steps and log interval may change: resumed ({rc}): {out[-300:]}")
    rc, out, _ = train(job, "--set", "training.max_steps=4", "--set", "styles.wave.style_weight=50",
                       "--allow-changed-settings")
    check(rc == 0 and "styles.wave.style_weight: 100 -> 50" in out and "resuming anyway" in out,
          f"--allow-changed-settings resumes and logs the diff ({rc}): {out[-300:]}")


def part_port(work):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    job = write_job(work, steps=30, monitoring={"listen": f"127.0.0.1:{port}", "linger_seconds": 0})
    p = subprocess.Popen([BINARY, "train", job, "--no-progress", "--threads", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    targets, deadline = None, time.time() + 120
    while time.time() < deadline and p.poll() is None and not targets:
        try:
            with open(os.path.join(work, "out/prometheus_targets.json")) as f:
                targets = json.load(f)[0]["targets"]
        except (OSError, ValueError, IndexError, KeyError):
            time.sleep(0.1)
    out = output_within(p, 300)
    check(p.returncode == 0, f"a taken port does not stop training ({p.returncode}): {out[-300:]}")
    check(f"cannot serve metrics on 127.0.0.1:{port}" in out and "listen_strict" in out,
          "... it warns, naming the port and the strict setting")
    check(bool(targets) and targets[0].startswith("127.0.0.1:") and targets[0] != f"127.0.0.1:{port}",
          f"... the targets file names the port actually served: {targets}")
    shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
    job = write_job(work, monitoring={"listen": f"127.0.0.1:{port}", "listen_strict": True})
    rc, out, _ = train(job)
    check(rc == 1 and f"cannot serve metrics on 127.0.0.1:{port}" in out,
          f"with listen_strict a taken port fails the run ({rc}): {out[-300:]}")
    taken.close()


def part_linger(work):
    # linger_seconds 600, past train()'s hang guard (300 s): a run that lingered fails (rc None).
    job = write_job(work, steps=2, monitoring={"listen": f"127.0.0.1:{free_port()}", "linger_seconds": 600})
    rc, out, seconds = train(job)
    check(rc == 0 and "not lingering" in out,
          f"2-step job, linger_seconds 600, nothing scraping: exit {rc} after {seconds:.1f} s")
    print(f"figure: 2-step job wall time without a scraper: {seconds:.1f} s", flush=True)
    shutil.rmtree(os.path.join(work, "out"), ignore_errors=True)
    port = free_port()
    job = write_job(work, steps=20, monitoring={"listen": f"127.0.0.1:{port}", "linger_seconds": 600})
    p = subprocess.Popen([BINARY, "train", job, "--no-progress", "--threads", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finals, stop = [], threading.Event()

    def scrape():  # soon after the exporter starts, then every 2 s; remembers what it saw
        while not stop.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    finals.append(r.read().decode())
            except OSError:
                pass
            stop.wait(2 if finals else 0.1)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    out = output_within(p, 300)  # a run that lingered its 600 s is killed here and fails
    stop.set()
    scraper.join()
    check(p.returncode == 0 and "final values scraped after" in out,
          f"with a scraper the job lingers until the next scrape ({p.returncode}): {out[-300:]}")
    lingered = [float(line.split("final values scraped after ")[1].split()[0])
                for line in out.splitlines() if "final values scraped after" in line]
    check(bool(lingered), f"... after {lingered} s, not linger_seconds (600)")
    check(bool(finals) and 'stylefleet_finished{job="users",rank="0"} 1' in finals[-1]
          and 'stylefleet_progress_ratio{job="users",style="wave"} 1' in finals[-1],
          "... and that last scrape read the final values and the finished flag")


def part_push(work):
    port = free_port()  # nothing listens there
    job = write_job(work, steps=1, monitoring={"listen": "off", "pushgateway": f"127.0.0.1:{port}"})
    rc, out, _ = train(job)
    check(rc == 0 and f"pushing metrics to 127.0.0.1:{port} (monitoring.pushgateway) failed: "
          "Connection refused" in out and "HTTP -" not in out,
          f"a failed push names the address and the reason ({rc}): "
          f"{[l for l in out.splitlines() if 'push' in l][:1]}")


def main():
    part = sys.argv[3]
    work = tempfile.mkdtemp(prefix=f"stylefleet_{part}_")
    try:
        globals()["part_" + part](work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish(f"user paths: {part}")


if __name__ == "__main__":
    sys.exit(main())
