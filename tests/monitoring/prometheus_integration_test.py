#!/usr/bin/python3
"""Monitoring against the real servers (ctest label `integration`).

Starts Prometheus (1 s scrapes, the shipped alert rules, file-based discovery of the file the
job writes) and a Pushgateway on loopback, trains a short 2-style job that serves and pushes
its metrics, then checks through the HTTP APIs:
  1. every {style, layer} style-loss series arrived with finite values; the steps counters went
     from their known start (0) to max_steps;
  2. every PromQL expression of the Grafana dashboard evaluates without error and returns data;
     every alert rule evaluates without error and each metric it reads has data (a healthy job
     fires none of them, so "returns nothing" is their normal answer);
  3. the pushed series reached the Pushgateway;
  4. promtool checks the shipped config and rules and a scrape of the exporter;
  5. the exporter answers /metrics only (other paths: 404);
  6. the finished job leaves by itself once its final values were scraped (not after the
     whole monitoring.linger_seconds), withdraws its targets, and pages no one
     (StylefleetRankDown never pending). Queries are evaluated at its last scrape.

usage: prometheus_integration_test.py STYLEFLEET_BINARY SOURCE_DIR
"""
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reliability"))
from harness import check, failures, finish, output_within, write_job  # noqa: E402

BINARY, SOURCE = sys.argv[1], sys.argv[2]
LAYERS = ["conv1_2", "conv2_2", "conv3_3", "conv4_3"]
# mosaic is swept (two runs that train together): the dashboard's sweep row needs its labels.
STYLES = ["candy", "mosaic/style_weight=50", "mosaic/style_weight=200"]
MAX_STEPS = 40


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode()


def query(prom, expr, at=None):
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    url = f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode(params)
    try:
        _, body = get(url)
    except urllib.error.HTTPError as e:
        return {"status": "error", "error": e.read().decode()}
    return json.loads(body)


def wait_for(url, seconds=120):
    """Whether `url` answers before `seconds` pass: a hang guard, generous for a loaded machine."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            get(url, timeout=1)
            return True
        except Exception:
            time.sleep(0.2)
    return False


def main():
    for tool in ("prometheus", "promtool", "prometheus-pushgateway"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not installed: run launch/install_deps.sh")
    work = tempfile.mkdtemp(prefix="stylefleet_monitoring_")
    processes = []
    try:
        prom, gateway = free_port(), free_port()
        out = os.path.join(work, "out")
        job = os.path.join(work, "job.yaml")
        # 40 steps a style: long enough to be scraped while training, since Prometheus's
        # discovery hands new targets to the scraper only every 5 s.
        write_job(job,
                  job={"name": "montest", "output_dir": out, "seed": 1},
                  data={"content_dir": f"{SOURCE}/configs/data/content", "image_size": 64,
                        "loader_threads": 1},
                  loss_network={"weights": "random:3"},
                  training={"batch_size": 2, "epochs": 0, "max_steps": MAX_STEPS, "learning_rate": 0.01,
                            "log_every_steps": 5, "preview_every_steps": 0},
                  checkpoint={"every_steps": 5, "keep": 1},
                  monitoring={"listen": "127.0.0.1:0", "linger_seconds": 600,
                              "pushgateway": f"127.0.0.1:{gateway}", "push_interval_seconds": 1},
                  styles=[{"image": f"{SOURCE}/configs/data/styles/candy.jpg"},
                          {"image": f"{SOURCE}/configs/data/styles/mosaic.jpg",
                           "sweep": {"grid": {"style_weight": [50, 200]}}}])
        shutil.copy(os.path.join(SOURCE, "monitoring/alerts.yml"), work)
        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"""global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [alerts.yml]
scrape_configs:
  - job_name: stylefleet
    honor_labels: true
    file_sd_configs: [{{files: ['{out}/prometheus_targets.json'], refresh_interval: 1s}}]
""")
        log = open(os.path.join(work, "servers.log"), "w")
        processes.append(subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work}/tsdb",
             f"--web.listen-address=127.0.0.1:{prom}"], stdout=log, stderr=log))
        processes.append(subprocess.Popen(
            ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{gateway}"],
            stdout=log, stderr=log))
        check(wait_for(f"http://127.0.0.1:{prom}/-/ready"), "Prometheus is ready")
        check(wait_for(f"http://127.0.0.1:{gateway}/metrics"), "Pushgateway is ready")

        train = subprocess.Popen([BINARY, "train", job, "--no-progress", "--threads", "1"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(train)
        # The exporter takes any free port (listen port 0) and the job's rank 0 writes the
        # address it got into the discovery file that Prometheus reads too.
        scrape = ""
        exporter = None
        deadline = time.time() + 300
        while time.time() < deadline and train.poll() is None and not scrape:
            try:
                if exporter is None:
                    with open(os.path.join(out, "prometheus_targets.json")) as f:
                        exporter = json.load(f)[0]["targets"][0].split(":")[1]
                _, text = get(f"http://127.0.0.1:{exporter}/metrics", timeout=1)
                if "stylefleet_style_loss{" in text:
                    scrape = text
            except Exception:
                time.sleep(0.3)
        check(exporter is not None, f"the job wrote its targets file (exporter port {exporter})")
        try:
            status, _ = get(f"http://127.0.0.1:{exporter}/")
        except urllib.error.HTTPError as e:
            status = e.code
        check(status == 404, f"the exporter answers / with 404 (got {status})")
        # The job lingers only until Prometheus has scraped its final values, then leaves by
        # itself; the checks below evaluate at that moment.
        output = output_within(train, 300)
        ended = time.time()
        check(train.returncode == 0 and "final values scraped after" in output,
              f"the job ended by itself (code {train.returncode}) once its final values were "
              "scraped, well before linger_seconds (600)")
        check(output.count("] done:") == len(STYLES), "training logged every style and sweep run as done")
        # Withdrawing the targets marks the job's series stale at once, so the checks evaluate
        # at the last scrape: the one that read stylefleet_finished 1 (raw samples of a range
        # selector carry their scrape times).
        result = query(prom, 'stylefleet_finished{job="montest"}[10m]', ended)
        samples = [v for r in result.get("data", {}).get("result", []) for v in r["values"]]
        finals = [float(t) for t, value in samples if value == "1"]
        check(bool(finals), f"the finished flag was scraped before the job left ({len(samples)} samples)")
        ended = max(finals) if finals else ended
        result = query(prom, 'count(stylefleet_progress_ratio{job="montest"} == 1)', ended)
        done = result.get("data", {}).get("result", [])
        check(bool(done) and float(done[0]["value"][1]) == len(STYLES),
              "both styles' progress 1 was scraped before the job left")
        with open(os.path.join(out, "prometheus_targets.json")) as f:
            withdrawn = json.load(f)[0]["targets"]
        check(withdrawn == [], f"the finished job withdrew its targets: {withdrawn}")
        paged = set()
        for _ in range(16):  # evaluations every second; up turns 0 within a scrape
            alerts = json.loads(get(f"http://127.0.0.1:{prom}/api/v1/alerts")[1])["data"]["alerts"]
            paged |= {a["labels"]["alertname"] + ":" + a["state"] for a in alerts}
            time.sleep(0.5)
        check(not any(a.startswith("StylefleetRankDown") for a in paged),
              f"a finished job pages no one (alerts seen after it ended: {sorted(paged) or 'none'})")

        # 1. Every {style, layer} series, finite; counters increased.
        for style in STYLES:
            for layer in LAYERS:
                result = query(prom, f'stylefleet_style_loss{{job="montest",style="{style}",layer="{layer}"}}', ended)
                values = [float(r["value"][1]) for r in result.get("data", {}).get("result", [])]
                check(len(values) == 1 and math.isfinite(values[0]),
                      f"style loss of {style}/{layer} arrived and is finite: {values}")
            # The counter's known start is 0 (a fresh run), and its final value was scraped
            # before the job left: so it must read max_steps however fast the style trained
            # (a style whose whole training fell between two scrapes is seen at one value).
            result = query(prom, f'max_over_time(stylefleet_steps_total{{style="{style}"}}[10m])', ended)
            final = [float(r["value"][1]) for r in result.get("data", {}).get("result", [])]
            check(final == [MAX_STEPS], f"steps counter of {style} went from 0 to {MAX_STEPS}: {final}")

        # 2. Dashboard and alert expressions.
        with open(os.path.join(SOURCE, "monitoring/grafana/dashboards/stylefleet.json")) as f:
            dashboard = json.load(f)
        substitutions = {"$job": "montest", "$style": ".*", "$sweep": ".+", "$__rate_interval": "20s"}
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):  # a row has none
                expr = target["expr"]
                for key, value in substitutions.items():
                    expr = expr.replace(key, value)
                result = query(prom, expr, ended)
                check(result.get("status") == "success" and result["data"]["result"],
                      f"dashboard '{panel['title']}': {expr} -> {result.get('error', len(result.get('data', {}).get('result', [])))}")
        # The sweep row compares exactly the runs of the sweep, by their labels.
        result = query(prom, 'stylefleet_loss{job="montest",sweep=~".+",term="total"}', ended)
        runs = sorted((r["metric"].get("style"), r["metric"].get("sweep"), r["metric"].get("style_weight"))
                      for r in result.get("data", {}).get("result", []))
        check(runs == [("mosaic/style_weight=200", "mosaic", "200"), ("mosaic/style_weight=50", "mosaic", "50")],
              f"sweep panels see the two mosaic runs with their swept values: {runs}")
        for variable in dashboard["templating"]["list"]:
            inner = re.match(r"label_values\((.*),\s*\w+\)", variable["query"]).group(1)
            result = query(prom, inner.replace("$job", "montest"), ended)
            check(result.get("status") == "success" and result["data"]["result"],
                  f"dashboard variable {variable['name']}: {inner}")
        rules = json.loads(get(f"http://127.0.0.1:{prom}/api/v1/rules")[1])["data"]["groups"]
        rule_list = [r for g in rules for r in g["rules"]]
        check(len(rule_list) == 4, f"Prometheus loaded {len(rule_list)} alert rules")
        for rule in rule_list:
            check(rule.get("health") == "ok", f"alert {rule['name']} evaluates: {rule.get('lastError', '')}")
            result = query(prom, rule["query"], ended)
            check(result.get("status") == "success", f"alert {rule['name']} query runs")
            for metric in sorted(set(re.findall(r"\b(stylefleet_\w+|up)\b", rule["query"]))):
                data = query(prom, metric, ended).get("data", {}).get("result", [])
                check(bool(data), f"alert {rule['name']} reads {metric}, which has data")

        # 3. Pushgateway.
        _, pushed = get(f"http://127.0.0.1:{gateway}/metrics")
        for style in STYLES:
            check(re.search(r'stylefleet_style_loss\{[^}]*job="montest"[^}]*style="' + style, pushed)
                  is not None, f"pushed style loss of {style} is on the Pushgateway")

        # 4. promtool.
        for args in (["check", "config", os.path.join(SOURCE, "monitoring/prometheus.yml")],
                     ["check", "rules", os.path.join(SOURCE, "monitoring/alerts.yml")]):
            r = subprocess.run(["promtool"] + args, capture_output=True, text=True)
            check(r.returncode == 0, f"promtool {' '.join(args[:2])}: {r.stdout.strip()} {r.stderr.strip()}")
        r = subprocess.run(["promtool", "check", "metrics"], input=scrape, capture_output=True, text=True)
        check(bool(scrape) and r.returncode == 0,
              f"promtool check metrics on a scrape: {r.stdout.strip()} {r.stderr.strip()}")
        if failures:
            print(output)
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)
    return finish("monitoring integration")


if __name__ == "__main__":
    sys.exit(main())
