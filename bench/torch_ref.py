# bench/torch_ref.py — the PyTorch peer of `dfx bench`: the same U-Net (bench/torch_unet.py), the
# same W1/W2 loss (hard Dirichlet columns, Q1 finite-element energy, mean over the batch), Adam,
# timed the same way (median step of --steps after --warmup; forward + loss + backward + update),
# plus peak memory and the double-backward HVP cost. Prints one JSON object with --json.
import argparse
import json
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_unet  # noqa: E402


def q1_stiffness(d, h):
    """Element stiffness of a Q1 cell of side h, local nodes lexicographic with x fastest."""
    n = 1 << d
    g = [0.5 - 0.5 / np.sqrt(3), 0.5 + 0.5 / np.sqrt(3)]
    K = np.zeros((n, n))
    for q in range(n):
        xi = [g[(q >> a) & 1] for a in range(d)]
        grad = np.zeros((n, d))
        for a in range(n):
            for e in range(d):
                v = 1.0
                for f in range(d):
                    bit = (a >> f) & 1
                    v *= (1.0 if bit else -1.0) if f == e else (xi[f] if bit else 1 - xi[f])
                grad[a, e] = v
        K += grad @ grad.T / n
    return K * h ** (d - 2)


def cell_nodes(t, d):
    """The 2^d corner views of every cell, lexicographic (x = last axis fastest)."""
    views = []
    for k in range(1 << d):
        sl = [slice(None), slice(None)]
        for a in reversed(range(d)):  # spatial axes from the first (z or y) to x
            off = (k >> a) & 1
            sl.append(slice(off, t.shape[2 + (d - 1 - a)] - 1 + off))
        views.append(t[tuple(sl)])
    return views


def energy_loss(u, nu, K):
    d = u.dim() - 2
    n = u.shape[-1]
    mask = torch.ones(n, dtype=u.dtype, device=u.device)
    lift = torch.zeros(n, dtype=u.dtype, device=u.device)
    mask[0] = mask[-1] = 0
    lift[0] = 1
    ub = u * mask + lift
    uc = cell_nodes(ub, d)
    nc = sum(cell_nodes(nu, d)) / (1 << d)
    q = 0
    for i in range(1 << d):
        ki = sum(float(K[i, j]) * uc[j] for j in range(1 << d) if K[i, j] != 0)
        q = q + uc[i] * ki
    return 0.5 * (nc * q).sum() / u.shape[0]


def omega(d, n, batch, device, dtype):
    """A W1/W2-like smooth log-coefficient field (the values do not affect timing)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    modes = 4 if d == 2 else 3
    out = torch.zeros((batch, 1) + (n,) * d, dtype=torch.float64)
    for b in range(batch):
        for idx in np.ndindex(*(modes,) * d):
            m = [i + 1 for i in idx]
            xi = (torch.rand(1, generator=gen).item() * 2 - 1) * np.sqrt(3)
            term = torch.ones((n,) * d, dtype=torch.float64) * 4 * xi / sum(k * k for k in m)
            for a, k in enumerate(m):
                shape = [1] * d
                shape[d - 1 - a] = n
                term = term * torch.cos(k * np.pi * x).reshape(shape)
            out[b, 0] += term
    return out.to(device=device, dtype=dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--problem", choices=["poisson2d", "poisson3d"], default="poisson2d")
    ap.add_argument("--res", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 on GPU")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--hvp", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = a.tf32
        torch.backends.cudnn.allow_tf32 = a.tf32
    d = 2 if a.problem == "poisson2d" else 3
    torch.manual_seed(0)
    net = (torch_unet.w1() if d == 2 else torch_unet.w2()).to(device=dev, dtype=dtype)
    fmt = torch.channels_last if d == 2 else torch.channels_last_3d
    if a.channels_last:
        net = net.to(memory_format=fmt)
    model = torch.compile(net) if a.compile else net
    x = omega(d, a.res, a.batch, dev, dtype)
    if a.channels_last:
        x = x.contiguous(memory_format=fmt)
    nu = torch.exp(x)
    K = q1_stiffness(d, 1.0 / (a.res - 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = energy_loss(model(x), nu, K)
        loss.backward()
        opt.step()
        return loss

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(a.warmup):
        step()
    sync()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    out = {"engine": "torch", "torch": torch.__version__, "problem": a.problem, "res": a.res,
           "batch": a.batch, "step_ms": step_s * 1e3, "samples_per_s": a.batch / step_s,
           "loss": float(loss), "threads": torch.get_num_threads(),
           "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if dev.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if a.hvp:
        params = [p for p in net.parameters()]
        v = [torch.rand_like(p) * 2 - 1 for p in params]
        th, tg = [], []
        for i in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            torch.autograd.grad(energy_loss(model(x), nu, K), params)
            sync()
            g = time.perf_counter() - t0
            t0 = time.perf_counter()
            gr = torch.autograd.grad(energy_loss(model(x), nu, K), params, create_graph=True)
            dot = sum((gi * vi).sum() for gi, vi in zip(gr, v))
            torch.autograd.grad(dot, params)
            sync()
            h = time.perf_counter() - t0
            if i >= a.warmup:
                tg.append(g)
                th.append(h)
        out.update(hvp_ms=statistics.median(th) * 1e3, grad_ms=statistics.median(tg) * 1e3,
                   hvp_over_grad=statistics.median(th) / statistics.median(tg),
                   hvp_over_step=statistics.median(th) / step_s)
    if a.json:
        print(json.dumps(out))
    else:
        print(f"torch {a.problem} N={a.res} batch {a.batch}: step {out['step_ms']:.2f} ms, "
              f"{out['samples_per_s']:.2f} samples/s" +
              (f", HVP {out['hvp_ms']:.1f} ms = {out['hvp_over_grad']:.2f} x grad" if a.hvp else ""))


if __name__ == "__main__":
    main()
