#!/usr/bin/env python3
"""W3's discretisation floor: how far the Burgers loss's own minimiser is from the FV reference.

The loss (pde/burgers_loss.h) is zero exactly at the solution of its implicit scheme (backward
Euler in t; central or upwind Engquist-Osher advection), so that solution, time-marched here by
Newton per row, is the best any network can reach on it. Compared with `dfx solve --problem
burgers` (Godunov finite volumes, 4x finer) on held-out fields.

  python3 bench/w3_floor.py --res 128 --visc 0.01 --advection central --fields 64
Needs numpy and scipy; DFX (default build/apps/dfx) names the binary.
"""
import argparse, os, subprocess, tempfile
import numpy as np
from scipy.linalg import solve_banded

ap = argparse.ArgumentParser()
ap.add_argument("--res", type=int, default=128)
ap.add_argument("--visc", type=float, default=0.01)
ap.add_argument("--advection", choices=["central", "upwind"], default="central")
ap.add_argument("--fields", type=int, default=64)
a = ap.parse_args()
dfx = os.environ.get("DFX", "build/apps/dfx")
N, visc, h = a.res, a.visc, 1.0 / (a.res - 1)


def row_residual(c, prev):
    """Residual of one time row and its tridiagonal Jacobian (banded form for solve_banded)."""
    r, ab = np.zeros(N), np.zeros((3, N))
    r[0], r[-1] = c[0], c[-1]
    ab[1, 0] = ab[1, -1] = 1
    uxx = (c[2:] - 2 * c[1:-1] + c[:-2]) / h**2
    if a.advection == "central":
        ux = (c[2:] - c[:-2]) / (2 * h)
        r[1:-1] = (c[1:-1] - prev[1:-1]) / h + c[1:-1] * ux - visc * uxx
        ab[1, 1:-1] = 1 / h + ux + 2 * visc / h**2
        ab[0, 2:] = c[1:-1] / (2 * h) - visc / h**2
        ab[2, :-2] = -c[1:-1] / (2 * h) - visc / h**2
    else:
        lo, hi = np.maximum(c[:-1], 0), np.minimum(c[1:], 0)  # face x+1/2: its two states
        flux = 0.5 * lo**2 + 0.5 * hi**2
        r[1:-1] = (c[1:-1] - prev[1:-1]) / h + (flux[1:] - flux[:-1]) / h - visc * uxx
        ab[1, 1:-1] = 1 / h + (lo[1:] - hi[:-1]) / h + 2 * visc / h**2
        ab[0, 2:] = hi[1:] / h - visc / h**2
        ab[2, :-2] = -lo[:-1] / h - visc / h**2
    ab[0, 1] = ab[2, -2] = 0  # the boundary rows are identities
    return r, ab


errs = []
with tempfile.TemporaryDirectory() as tmp:
    for k in range(a.fields):
        out = os.path.join(tmp, "ref.npy")
        subprocess.run([dfx, "solve", "--problem", "burgers", "--res", str(N), "--sample", str(k),
                        "--heldout", "--visc", str(visc), "--out", out, "--threads", "1"],
                       check=True, capture_output=True)
        ref = np.load(out).reshape(N, N)
        u = np.zeros((N, N))
        u[0] = ref[0]  # the reference's t = 0 row is b(x)
        for t in range(1, N):
            c = u[t - 1].copy()
            c[0] = c[-1] = 0
            for _ in range(100):
                r, ab = row_residual(c, u[t - 1])
                d = solve_banded((1, 1), ab, r)
                c -= d
                if np.max(np.abs(d)) < 1e-13 * (1 + np.max(np.abs(c))):
                    break
            u[t] = c
        errs.append(np.linalg.norm(u - ref) / np.linalg.norm(ref))
errs = np.array(errs)
print(f"W3 floor, {a.advection} advection, N = {N}, visc = {visc}, {a.fields} held-out fields: "
      f"mean {100 * errs.mean():.2f} %, max {100 * errs.max():.2f} %")
