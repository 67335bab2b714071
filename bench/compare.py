# bench/compare.py — dfx and its PyTorch peer side by side on the same workload, alternating runs
# (so machine noise hits both alike) and reporting medians and ratios. Usage:
#   python3 bench/compare.py --dfx build/apps/dfx --res 64 128 --batch 8 --threads 2 --rounds 3
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dfx", default="build/apps/dfx")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--problem", default="poisson2d")
    ap.add_argument("--res", type=int, nargs="+", default=[64])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--hvp", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--torch-args", default="", help="extra flags for torch_ref.py (e.g. --tf32)")
    a = ap.parse_args()
    common = ["--problem", a.problem, "--batch", str(a.batch), "--threads", str(a.threads),
              "--steps", str(a.steps), "--warmup", str(a.warmup), "--device", a.device, "--json"]
    if a.hvp:
        common.append("--hvp")
    rows = []
    for res in a.res:
        d, t = [], []
        for _ in range(a.rounds):
            d.append(run([a.dfx, "bench", "--res", str(res)] + common))
            t.append(run([a.python, os.path.join(HERE, "torch_ref.py"), "--res", str(res)] + common +
                         a.torch_args.split()))
        med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
        row = {"res": res, "dfx_ms": med(d, "step_ms"), "torch_ms": med(t, "step_ms"),
               "dfx_rss": med(d, "max_rss_gib"), "torch_rss": med(t, "max_rss_gib")}
        row["speedup"] = row["torch_ms"] / row["dfx_ms"]
        if a.hvp:
            row["dfx_hvp"] = med(d, "hvp_over_grad")
            row["torch_hvp"] = med(t, "hvp_over_grad")
            row["dfx_apply"] = med(d, "hvp_apply_over_grad")
        rows.append(row)
    print(f"{a.problem}, batch {a.batch}, {a.threads} thread(s), {a.device}, median of {a.rounds} "
          f"alternating rounds x {a.steps} steps")
    hdr = "| N | dfx step ms | torch step ms | torch/dfx | dfx RSS GiB | torch RSS GiB |"
    if a.hvp:
        hdr += " dfx HVP/grad | torch HVP/grad | dfx one more HVP at the point/grad |"
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for r in rows:
        line = (f"| {r['res']} | {r['dfx_ms']:.1f} | {r['torch_ms']:.1f} | {r['speedup']:.2f} | "
                f"{r['dfx_rss']:.3f} | {r['torch_rss']:.3f} |")
        if a.hvp:
            line += f" {r['dfx_hvp']:.2f} | {r['torch_hvp']:.2f} | {r['dfx_apply']:.2f} |"
        print(line)


if __name__ == "__main__":
    main()
