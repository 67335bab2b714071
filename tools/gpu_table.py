#!/usr/bin/env python3
"""tools/gpu_table.py — the short table that ends tools/gpu_check.sh: one line per W1 row the
script ran, dfx beside the PyTorch row of the same N and mode (from the same call), with the
time ratio. Reads the dfx_<N>_<tag>.json / torch_<N>_<tag>.json files of a log folder.
  usage: python3 tools/gpu_table.py LOGS
"""
import glob
import json
import os
import re
import sys


def last_json(path):
    """The last line of a row's output as JSON, or None when the row failed."""
    try:
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def torch_tag(tag):
    """The PyTorch row a dfx row compares with: the same N and the same precision and layout."""
    base = "tf32" if tag.startswith("tf32") else "fp32"
    return base + "_channels_last" if "_cl" in tag or "channels_last" in tag else base


def main():
    logs = sys.argv[1] if len(sys.argv) > 1 else "/tmp/gpu_check_logs"
    dfx, torch = {}, {}
    for path in glob.glob(os.path.join(logs, "*.json")):
        m = re.fullmatch(r"(dfx|torch)_(\d+)_(.+)\.json", os.path.basename(path))
        if not m:
            continue
        (dfx if m[1] == "dfx" else torch)[(int(m[2]), m[3])] = last_json(path)
    head = f"{'N':>5}  {'dfx row':<22} {'dfx ms':>8} {'torch ms':>9} {'dfx/torch':>9} " \
           f"{'dfx GiB':>8} {'torch GiB':>9} {'HVP/step dfx, torch':>20} {'waits':>5}"
    print(head)
    print("-" * len(head))
    for (n, tag) in sorted(dfx, key=lambda k: (k[0], k[1])):
        d = dfx[(n, tag)]
        t = torch.get((n, torch_tag(tag)))
        if d is None:
            print(f"{n:>5}  {tag:<22} {'failed':>8}")
            continue
        ratio = f"{d['step_ms'] / t['step_ms']:.2f}" if t else ""
        hvp = ""
        if "hvp_over_step" in d:
            hvp = f"{d['hvp_over_step']:.2f}, " + (f"{t['hvp_over_step']:.2f}" if t and
                                                   "hvp_over_step" in t else "-")
        tms = f"{t['step_ms']:.1f}" if t else ""
        tgib = f"{t['peak_gib']:.2f}" if t and "peak_gib" in t else ""
        print(f"{n:>5}  {tag:<22} {d['step_ms']:>8.1f} {tms:>9} {ratio:>9} "
              f"{d.get('peak_gib', float('nan')):>8.2f} {tgib:>9} {hvp:>20} "
              f"{d.get('host_waits_per_step', float('nan')):>5.1f}")
    for (n, tag), t in sorted(torch.items()):
        if t is not None and tag.endswith("compile"):
            print(f"{n:>5}  {'torch ' + tag:<22} {'':>8} {t['step_ms']:>9.1f}")


if __name__ == "__main__":
    main()
