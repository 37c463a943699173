#!/usr/bin/python3
"""Checks the allreduce figures of a `stylefleet bench` JSON written under mpirun.

Each entry's algbw must equal bytes / seconds and its busbw algbw * 2(n-1)/n (the nccl-tests
convention), recomputed here from the raw bytes, seconds and the rank count. Run it with n > 2:
at n = 2 the factor is 1 and busbw = algbw would pass unnoticed.

usage: check_allreduce_figures.py BENCH_JSON RANKS
"""
import json
import sys


def main():
    path, ranks = sys.argv[1], int(sys.argv[2])
    doc = json.load(open(path))
    problems = []
    if doc["machine"]["ranks"] != ranks or doc["train_synthetic"][0]["ranks"] != ranks:
        problems.append(f"ranks: machine {doc['machine']['ranks']}, "
                        f"train {doc['train_synthetic'][0]['ranks']}, launched {ranks}")
    entries = doc.get("allreduce", [])
    if len(entries) != 3:
        problems.append(f"{len(entries)} allreduce sizes, expected 3")
    for e in entries:
        algbw = e["bytes"] / e["seconds"] / 1e9
        busbw = algbw * 2 * (ranks - 1) / ranks
        if not (e["seconds"] > 0 and abs(e["algbw_gbps"] - algbw) <= 1e-9 * algbw):
            problems.append(f"algbw {e['algbw_gbps']} != bytes / seconds = {algbw}: {e}")
        if abs(e["busbw_gbps"] - busbw) > 1e-9 * busbw:
            problems.append(f"busbw {e['busbw_gbps']} != algbw * 2(n-1)/n = {busbw}: {e}")
    for p in problems:
        print("FAIL", p)
    if not problems:
        print(f"allreduce figures of {ranks} ranks: ok", entries[1])
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
