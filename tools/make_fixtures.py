#!/usr/bin/python3
# tools/make_fixtures.py — writes tests/fixtures/unet{2d,3d}.safetensors, the PyTorch reference
# that tests/models/test_unet_parity.cpp checks dfx's U-Net against: weights, input, output, loss,
# every gradient and the BatchNorm running stats after one training-mode step. With Debian's torch:
#   /usr/bin/python3 tools/make_fixtures.py [--out tests/fixtures]
# Safetensors is written by hand (JSON header + raw little-endian bytes): no extra packages.
import argparse
import copy
import json
import math
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import torch_unet  # noqa: E402

_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def save_safetensors(path, tensors, metadata):
    """tensors: ordered name -> CPU tensor. Same layout as the safetensors library: u64 header
    length, JSON header padded with spaces to 8 bytes, then the tensors back to back."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        data = t.numpy().tobytes()  # native order; the host is little-endian (checked in main)
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def omega_field(dims, n, batch, modes, gen):
    """WORKLOADS.md's log-coefficient field: sum over modes of 4 xi / |k|^2 prod cos(k_d pi x_d),
    xi ~ U(-sqrt 3, sqrt 3); shape [batch, 1, n, ...] with x along the last axis."""
    x = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    out = torch.zeros([batch] + [n] * dims, dtype=torch.float64)
    ks = torch.cartesian_prod(*[torch.arange(1, modes + 1)] * dims).reshape(-1, dims)
    xi = (torch.rand(batch, len(ks), generator=gen, dtype=torch.float64) * 2 - 1) * math.sqrt(3)
    for m, k in enumerate(ks.tolist()):
        term = torch.ones([n] * dims, dtype=torch.float64)
        for d in range(dims):  # axis d of the grid uses wavenumber k[dims - 1 - d] (x is last)
            shape = [1] * dims
            shape[d] = n
            term = term * torch.cos(k[dims - 1 - d] * math.pi * x).reshape(shape)
        out += (4.0 / sum(v * v for v in k)) * xi[:, m].reshape([batch] + [1] * dims) * term
    return out.unsqueeze(1).float()


def make(name, net, dims, n, batch, modes, seed, out_dir):
    gen = torch.Generator().manual_seed(seed + 1)
    x = omega_field(dims, n, batch, modes, gen)
    net.train()
    state0 = {k: v.clone() for k, v in net.state_dict().items()}
    w = torch.randn([batch, 1] + [n] * dims, generator=gen)

    # The reference runs in float64 from the float32 weights and input, so that the stored float32
    # values are accurate to rounding and the dfx float32 run is measured against the exact answer.
    net64 = copy.deepcopy(net).double()
    net64.train()
    x64 = x.double()
    out = net64(x64)
    loss = (out * w.double()).mean()
    loss.backward()

    tensors = {}
    for k, v in state0.items():
        tensors[k] = v
    tensors["input"] = x
    tensors["loss_weight"] = w
    tensors["output"] = out.detach().float()
    tensors["loss"] = loss.detach().float().reshape([])
    for k, p in net64.named_parameters():
        tensors["grad." + k] = p.grad.float()
    for k, b in net64.named_buffers():
        tensors["after." + k] = b.float() if b.dtype == torch.float64 else b
    meta = {
        "generator": "tools/make_fixtures.py",
        "torch": torch.__version__,
        "network": name,
        "seed": str(seed),
        "n": str(n),
        "batch": str(batch),
        "loss": "mean(output * loss_weight)",
        "mode": "train (BatchNorm batch statistics, momentum 0.1, eps 1e-5)",
        "reference_precision": "float64 from float32 weights/input, stored as float32",
        "keys": "state_dict keys = weights before the step; input; loss_weight; output; loss; "
                "grad.<param>; after.<buffer> = buffers after the step",
    }
    path = os.path.join(out_dir, name + ".safetensors")
    save_safetensors(path, tensors, meta)
    nparams = sum(p.numel() for p in net.parameters())
    print(f"{path}: {nparams:,} parameters, loss {loss.item():.9g}, "
          f"{os.path.getsize(path) / 1e6:.2f} MB")


def load_safetensors(path):
    """name -> torch tensor, and the metadata, from a safetensors file (read by hand)."""
    import json
    import struct
    dtypes = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=dtypes[info["dtype"]])
        out[name] = t.reshape(info["shape"]).clone()
    return out, meta


def check_checkpoint(ckpt, eval_dir):
    """Loads a dfx training checkpoint into the PyTorch peer (strict: every key and shape must
    match) and, given `dfx eval --out DIR` arrays, compares PyTorch's predictions with dfx's."""
    import json
    import numpy as np
    tensors, meta = load_safetensors(ckpt)
    cfg = json.loads(meta.get("config", "{}"))
    dims = 3 if cfg.get("problem") == "poisson3d" else 2
    net = torch_unet.UNet(dims=dims, depth=cfg.get("depth", 4), width=cfg.get("width", 16))
    state = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    net.load_state_dict(state, strict=True)
    print(f"{ckpt}: {len(state)} tensors loaded into the PyTorch U-Net (strict)")
    if eval_dir:
        x = torch.from_numpy(np.load(os.path.join(eval_dir, "inputs.npy"))).to(torch.float64)
        want = np.load(os.path.join(eval_dir, "predictions.npy"))
        net = net.double().eval()
        with torch.no_grad():
            u = net(x)
        u[..., 0] = 1.0
        u[..., -1] = 0.0
        err = np.linalg.norm(u.numpy() - want) / np.linalg.norm(want)
        print(f"PyTorch vs dfx predictions on {x.shape[0]} held-out fields: relative difference {err:.3e}")
        assert err < 1e-4, err


def main():
    assert sys.byteorder == "little", "safetensors data are little-endian"
    ap = argparse.ArgumentParser(description=__doc__)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    ap.add_argument("--check-checkpoint", metavar="CKPT",
                    help="instead: load a dfx checkpoint into the PyTorch peer and check it")
    ap.add_argument("--eval-dir", help="with --check-checkpoint: a `dfx eval --out` directory")
    args = ap.parse_args()
    if args.check_checkpoint:
        check_checkpoint(args.check_checkpoint, args.eval_dir)
        return
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(20240601)
    make("unet2d", torch_unet.w1(), dims=2, n=32, batch=2, modes=4, seed=1, out_dir=args.out)
    torch.manual_seed(20240602)
    make("unet3d", torch_unet.w2(), dims=3, n=16, batch=2, modes=3, seed=2, out_dir=args.out)


if __name__ == "__main__":
    main()
