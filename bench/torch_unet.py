# bench/torch_unet.py — the DiffNet U-Net of WORKLOADS.md (W1 2-d, W2 3-d) in plain PyTorch
# nn.Modules: the peer that dfx's models/unet.h must match parameter for parameter. Its state_dict
# keys are the names dfx gives its parameters and buffers; tools/make_fixtures.py and the PyTorch
# benchmark peer both build the network from here.
import argparse

import torch
from torch import nn

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}


def make_activation(name="leaky_relu", slope=0.2):
    if name == "leaky_relu":
        return nn.LeakyReLU(slope)
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    if name == "sigmoid":
        return nn.Sigmoid()
    if name == "identity":
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r}")


class ConvBlock(nn.Module):
    """conv3 -> norm -> act -> conv3 -> norm -> act. Convs carry a bias only without norm
    (a bias before BatchNorm is cancelled by its mean subtraction)."""

    def __init__(self, dims, cin, cout, activation="leaky_relu", slope=0.2, norm="batch"):
        super().__init__()
        bias = norm == "none"
        self.conv1 = _CONV[dims](cin, cout, 3, padding=1, bias=bias)
        self.norm1 = _BN[dims](cout) if norm == "batch" else nn.Identity()
        self.act1 = make_activation(activation, slope)
        self.conv2 = _CONV[dims](cout, cout, 3, padding=1, bias=bias)
        self.norm2 = _BN[dims](cout) if norm == "batch" else nn.Identity()
        self.act2 = make_activation(activation, slope)

    def forward(self, x):
        x = self.act1(self.norm1(self.conv1(x)))
        return self.act2(self.norm2(self.conv2(x)))


class UNet(nn.Module):
    """DiffNet U-Net: encoder block(in, C), then per level maxpool 2 -> block(w, 2w) (the deepest
    is the bottleneck); decoder per level ConvTranspose 2/2 (w -> w/2) -> concat [up, skip] ->
    block(w, w/2); head conv1x1 with bias. Boundary conditions are not applied here."""

    def __init__(self, dims=2, in_channels=1, out_channels=1, depth=4, width=16,
                 activation="leaky_relu", slope=0.2, norm="batch"):
        super().__init__()
        assert dims in (1, 2, 3) and depth >= 1 and norm in ("batch", "none")
        self.dims, self.depth = dims, depth
        widths = [width * 2 ** i for i in range(depth)]
        self.encoder = nn.ModuleList()
        self.encoder.append(ConvBlock(dims, in_channels, widths[0], activation, slope, norm))
        for i in range(1, depth):
            self.encoder.append(ConvBlock(dims, widths[i - 1], widths[i], activation, slope, norm))
        self.pool = _POOL[dims](2)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for i in range(depth - 1, 0, -1):
            self.up.append(_CONV_T[dims](widths[i], widths[i - 1], 2, stride=2))
            self.decoder.append(ConvBlock(dims, widths[i], widths[i - 1], activation, slope, norm))
        self.head = _CONV[dims](widths[0], out_channels, 1)

    def forward(self, x):
        div = 2 ** (self.depth - 1)
        assert all(s % div == 0 for s in x.shape[2:]), f"spatial size must divide by {div}"
        skips = []
        h = self.encoder[0](x)
        for enc in self.encoder[1:]:
            skips.append(h)
            h = enc(self.pool(h))
        for up, dec in zip(self.up, self.decoder):
            h = dec(torch.cat([up(h), skips.pop()], dim=1))
        return self.head(h)


def w1(**kw):
    """W1: 2-d, depth 4, width 16 (482,449 parameters)."""
    return UNet(dims=2, depth=4, width=16, **kw)


def w2(**kw):
    """W2: 3-d, depth 4, width 8 (350,809 parameters)."""
    return UNet(dims=3, depth=4, width=8, **kw)


def main():
    ap = argparse.ArgumentParser(description="print the peer U-Net's size and state_dict keys")
    ap.add_argument("--workload", choices=["w1", "w2"], default="w1")
    ap.add_argument("--keys", action="store_true", help="list state_dict keys and shapes")
    args = ap.parse_args()
    net = w1() if args.workload == "w1" else w2()
    print(f"{args.workload}: {sum(p.numel() for p in net.parameters()):,} parameters")
    if args.keys:
        for k, v in net.state_dict().items():
            print(f"{k} {list(v.shape)}")


if __name__ == "__main__":
    main()
