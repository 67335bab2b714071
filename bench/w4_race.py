#!/usr/bin/env python3
"""W4, the optimiser race (../shared/WORKLOADS.md): W1 at N = 64, 256 training fields per epoch,
global batch 8 and 64, the same network and initial weights (seed) for every method.

Each run is one `dfx train` with a training-time budget (--max-time; held-out evaluations are
excluded from it) and a held-out evaluation (64 fields against the multigrid reference) after
every epoch. From metrics.jsonl the script reads, per run: seconds per epoch, the epochs and the
training time until the mean held-out relative L2 error first reaches each target (20, 10, 5 %), the error at
the end of the budget, and the error after a fixed number of epochs (the drift from batch 8 to
64). Times are reported as ratios to Adam at the same batch, measured in the same invocation.

  python3 bench/w4_race.py --settings bench/w4_settings.json            # the race
  python3 bench/w4_race.py --settings bench/w4_race2.json --budget 400 \
      --targets 0.2 0.1 0.05 0.02 0.01                                  # with Gauss-Newton and
                                                                        # output preconditioning
  python3 bench/w4_race.py --settings bench/w4_tuning.json --budget 120 # a tuning sweep

Runs go two at a time (--jobs) with one thread each (--threads) on the 2-core machine, so every
method sees the same load. Settings: {"runs": [{"name": ..., "batch": ..., "flags": [...]}]}.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_one(args, run):
    out = os.path.join(args.out, run["name"])
    steps_per_epoch = math.ceil(args.samples / run["batch"])
    cmd = [args.dfx, "train", "--res", str(args.res), "--batch", str(run["batch"]),
           "--samples", str(args.samples), "--threads", str(args.threads),
           "--seed", str(args.seed), "--max-time", str(args.budget),
           "--eval-samples", str(args.eval_samples),
           "--eval-every", str(steps_per_epoch * run.get("eval_every_epochs", 1)),
           "--panels", "0", "--log-every", "1000000", "--out", out]
    cmd += [str(f) for f in run["flags"]]
    if "--epochs" not in run["flags"] and "--steps" not in run["flags"]:
        cmd += ["--epochs", "100000"]
    t0 = time.time()
    with open(out + ".log", "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT,
                             env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
    return run, rc, time.time() - t0, cmd


def summarise(args, run, rc):
    path = os.path.join(args.out, run["name"], "metrics.jsonl")
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    steps = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "eval_rel_l2_mean" in r]
    s = {"name": run["name"], "method": run.get("method", run["name"]), "batch": run["batch"],
         "flags": " ".join(str(f) for f in run["flags"]), "rc": rc,
         "epochs_done": evals[-1]["epochs"] if evals else 0.0,
         "final_error": evals[-1]["eval_rel_l2_mean"] if evals else float("nan"),
         "best_error": min((e["eval_rel_l2_mean"] for e in evals), default=float("nan")),
         "train_time_s": evals[-1]["train_time_s"] if evals else 0.0}
    s["s_per_epoch"] = s["train_time_s"] / s["epochs_done"] if s["epochs_done"] else float("nan")
    s["epochs_to"], s["time_to"] = {}, {}
    for target in args.targets:
        hit = next((e for e in evals if e["eval_rel_l2_mean"] <= target), None)
        s["epochs_to"][target] = hit["epochs"] if hit else None
        s["time_to"][target] = hit["train_time_s"] if hit else None
    at = [e for e in evals if e["epochs"] <= args.drift_epochs + 1e-9]
    s["error_at_drift_epochs"] = at[-1]["eval_rel_l2_mean"] if at and abs(at[-1]["epochs"] - args.drift_epochs) < 1e-9 else None
    s["steps"] = len(steps)
    return s


def fmt(x, spec):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dfx", default=os.path.join(ROOT, "build/apps/dfx"))
    ap.add_argument("--settings", default=os.path.join(ROOT, "bench/w4_settings.json"))
    ap.add_argument("--out", default=os.path.join(ROOT, "runs/w4"))
    ap.add_argument("--only", nargs="*", help="run only these names")
    ap.add_argument("--budget", type=float, default=480, help="training seconds per run")
    ap.add_argument("--targets", type=float, nargs="+", default=[0.2, 0.1, 0.05],
                    help="held-out mean relative L2 errors (the last is W4's)")
    ap.add_argument("--drift-epochs", type=float, default=10, help="epochs at which batch 8 and 64 are compared")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--eval-samples", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--summary-only", action="store_true", help="re-read the runs in --out, run nothing")
    args = ap.parse_args()

    with open(args.settings) as f:
        runs = json.load(f)["runs"]
    if args.only:
        runs = [r for r in runs if r["name"] in args.only]
    os.makedirs(args.out, exist_ok=True)
    rcs = {}
    if not args.summary_only:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for run, rc, wall, cmd in pool.map(lambda r: run_one(args, r), runs):
                rcs[run["name"]] = rc
                print(f"{run['name']}: exit {rc}, {wall:.0f} s wall: {' '.join(cmd)}", file=sys.stderr)
    results = [summarise(args, r, rcs.get(r["name"], 0)) for r in runs]
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(results, f, indent=1)

    adam = {r["batch"]: r for r in results if r["method"] == "adam"}
    pct = [f"{t:.0%}" for t in args.targets]
    print(f"W4: W1 N={args.res}, {args.samples} fields/epoch, budget {args.budget:.0f} s of training "
          f"per run, {args.threads} thread(s), {args.jobs} runs at a time; mean held-out rel. L2 "
          f"over {args.eval_samples} fields; speed-up = Adam's time / the method's (same batch)\n")
    print("| run | batch | s/epoch | epochs to " + " / ".join(pct) + " | time s to " + " / ".join(pct) +
          " | speed-up vs Adam at " + " / ".join(pct) +
          f" | error at budget | best | after {args.drift_epochs:g} epochs | epochs in budget |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        a = adam.get(r["batch"])
        ups = []
        for t in args.targets:
            ok = a and a["time_to"][t] and r["time_to"][t]
            ups.append(f"{a['time_to'][t] / r['time_to'][t]:.2f}x" if ok else "-")
        print(f"| {r['name']} | {r['batch']} | {fmt(r['s_per_epoch'], '.2f')} | "
              + " / ".join(fmt(r["epochs_to"][t], ".0f") for t in args.targets) + " | "
              + " / ".join(fmt(r["time_to"][t], ".0f") for t in args.targets) + " | "
              + " / ".join(ups) + f" | {fmt(r['final_error'], '.4f')} | "
              f"{fmt(r['best_error'], '.4f')} | {fmt(r['error_at_drift_epochs'], '.4f')} | "
              f"{fmt(r['epochs_done'], '.1f')} |")
    methods = sorted({r["method"] for r in results})
    drift = []
    for m in methods:
        b = {r["batch"]: r for r in results if r["method"] == m}
        if 8 in b and 64 in b and b[8]["error_at_drift_epochs"] and b[64]["error_at_drift_epochs"]:
            drift.append((m, b[8]["error_at_drift_epochs"], b[64]["error_at_drift_epochs"]))
    if drift:
        print(f"\nDrift, error after {args.drift_epochs:g} epochs, batch 8 -> 64:")
        for m, e8, e64 in drift:
            print(f"  {m}: {e8:.4f} -> {e64:.4f} ({e64 / e8:.2f}x)")


if __name__ == "__main__":
    main()
