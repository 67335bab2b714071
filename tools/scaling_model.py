# tools/scaling_model.py — alpha-beta model of data-parallel W1 training (docs/scaling_model.md):
# bucketed ring all-reduce of the gradients overlapped with backward, plus SyncBatchNorm's small
# blocking all-reduces, projected to P = 8..512 GPUs for given compute times and network figures.
#   python3 tools/scaling_model.py --step-ms 72.6 --per-gpu-batch 8
import argparse

PARAMS = 482_449          # W1 U-Net parameters (fp32 gradients)
BN_LAYERS = 14            # BatchNorm layers in the W1 U-Net (2 per block, 4 + 3 blocks)
BUCKET_BYTES = 25 << 20   # default bucket cap; W1's 1.9 MB of gradients fit in one bucket

NETWORKS = {  # name: (alpha seconds per message hop, beta seconds per byte)
    "NVLink (450 GB/s, 3 us)": (3e-6, 1 / 450e9),
    "InfiniBand 400 Gb/s (5 us)": (5e-6, 1 / 50e9),
    "InfiniBand 200 Gb/s (5 us)": (5e-6, 1 / 25e9),
    "Ethernet 100 Gb/s (15 us)": (15e-6, 1 / 12.5e9),
}


def ring_allreduce(p, nbytes, alpha, beta):
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes * beta


def tree_allreduce(p, nbytes, alpha, beta):
    """Recursive doubling: latency-optimal for the tiny SyncBN messages."""
    import math
    return 2 * math.ceil(math.log2(p)) * (alpha + nbytes * beta)


def efficiency(p, step_s, backward_share, alpha, beta, channels_total):
    grad_bytes = PARAMS * 4
    comm = ring_allreduce(p, grad_bytes, alpha, beta)
    hidden = backward_share * step_s            # the all-reduce can overlap backward
    exposed_grad = max(0.0, comm - hidden)
    # SyncBN: per layer one forward (3C float64) and one backward (2C float64) all-reduce,
    # blocking (the next layer needs the moments).
    bn = sum(tree_allreduce(p, 3 * 8 * c, alpha, beta) + tree_allreduce(p, 2 * 8 * c, alpha, beta)
             for c in channels_total)
    return step_s / (step_s + exposed_grad + bn), comm, bn


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--step-ms", type=float, default=72.6,
                    help="single-GPU step time at the per-GPU batch (default: PyTorch compiled TF32 "
                         "on an H100, W1 N=1024 batch 8, ANCHORS.md)")
    ap.add_argument("--backward-share", type=float, default=0.6)
    a = ap.parse_args()
    widths = [16, 32, 64, 128]
    # Channels of the 14 BN layers: encoder blocks (w, w) per level, decoder blocks (w, w).
    channels = [c for w in widths for c in (w, w)] + [c for w in widths[:-1] for c in (w, w)]
    assert len(channels) == BN_LAYERS
    step = a.step_ms / 1e3
    print(f"W1 N=1024, weak scaling at a fixed per-GPU batch; single-GPU step {a.step_ms} ms, "
          f"backward share {a.backward_share}")
    print("| network | P | grad all-reduce ms | exposed ms | SyncBN ms | efficiency |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (alpha, beta) in NETWORKS.items():
        for p in (8, 64, 512):
            eff, comm, bn = efficiency(p, step, a.backward_share, alpha, beta, channels)
            exposed = max(0.0, comm - a.backward_share * step)
            print(f"| {name} | {p} | {comm * 1e3:.3f} | {exposed * 1e3:.3f} | {bn * 1e3:.3f} | {eff:.3f} |")


if __name__ == "__main__":
    main()
