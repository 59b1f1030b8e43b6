"""Glow in PyTorch with exactly the conventions of this project (DESIGN.md,
docs/FORMAT.md): the reference side of bench/compare.lua.

Same architecture and maths as glow.Glow: squeeze with
out[n, k*4 + dy*2 + dx, i, j] = in[n, k, 2i+dy, 2j+dx] (channels-first here),
ActNorm with data-dependent init, LU-parameterized invertible 1x1 conv,
affine coupling with scale = sigmoid(h + 2), NN = conv3x3 -> ActNorm -> ReLU
-> conv1x1 -> ActNorm -> ReLU -> ZeroConv3x3, split prior from a ZeroConv of
z1, learned top prior, bits/dim loss. Used for timing and memory only.

    python3 bench/torch_glow.py --config fmnist-small --what train --steps 5
prints one JSON line: {"config", "what", "images_per_s", "peak_rss_mib", ...}.
"""
import argparse
import json
import math
import resource
import time

import numpy as np
import scipy.linalg
import torch
import torch.nn as nn
import torch.nn.functional as F

LOG2PI = math.log(2 * math.pi)

CONFIGS = {
    "fmnist-small": dict(shape=(28, 28, 1), levels=2, depth=8, width=128, batch=64),
    "cifar-k8": dict(shape=(32, 32, 3), levels=3, depth=8, width=512, batch=16),
    "cifar-paper": dict(shape=(32, 32, 3), levels=3, depth=32, width=512, batch=64),
}


class ActNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.initialized = False

    def forward(self, x):
        if not self.initialized:
            with torch.no_grad():
                mean = x.mean(dim=(0, 2, 3), keepdim=True)
                std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
                self.bias.copy_(-mean)
                self.logs.copy_(-torch.log(std + 1e-6))
            self.initialized = True
        return (x + self.bias) * torch.exp(self.logs)

    def flow(self, x, reverse=False):
        hw = x.shape[2] * x.shape[3]
        if reverse:
            return x * torch.exp(-self.logs) - self.bias, None
        y = self.forward(x)
        return y, hw * self.logs.sum() * torch.ones(x.shape[0], device=x.device)


class ZeroConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv.weight.data.zero_()
        self.conv.bias.data.zero_()
        self.logscale = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x):
        return self.conv(x) * torch.exp(3 * self.logscale)


def coupling_net(cin, cout, width):
    c1 = nn.Conv2d(cin, width, 3, padding=1, bias=False)
    c2 = nn.Conv2d(width, width, 1, bias=False)
    for c in (c1, c2):
        c.weight.data.normal_(0, 0.05)
    return nn.Sequential(c1, ActNorm(width), nn.ReLU(), c2, ActNorm(width), nn.ReLU(), ZeroConv(width, cout))


class InvConvLU(nn.Module):
    def __init__(self, c, rng):
        super().__init__()
        q, _ = np.linalg.qr(rng.standard_normal((c, c)))
        p, l, u = scipy.linalg.lu(q)
        s = np.diag(u)
        self.register_buffer("p", torch.tensor(p, dtype=torch.float32))
        self.register_buffer("sign", torch.tensor(np.sign(s), dtype=torch.float32))
        self.register_buffer("lmask", torch.tril(torch.ones(c, c), -1))
        self.register_buffer("eye", torch.eye(c))
        self.l = nn.Parameter(torch.tensor(l, dtype=torch.float32))
        self.u = nn.Parameter(torch.tensor(np.triu(u, 1), dtype=torch.float32))
        self.log_s = nn.Parameter(torch.tensor(np.log(np.abs(s)), dtype=torch.float32))

    def weight(self):
        l = self.l * self.lmask + self.eye
        u = self.u * self.lmask.T + torch.diag(self.sign * torch.exp(self.log_s))
        return self.p @ l @ u

    def flow(self, x, reverse=False):
        w = self.weight()
        hw = x.shape[2] * x.shape[3]
        if reverse:
            return F.conv2d(x, torch.inverse(w)[:, :, None, None]), None
        return F.conv2d(x, w[:, :, None, None]), hw * self.log_s.sum() * torch.ones(x.shape[0])


class Coupling(nn.Module):
    def __init__(self, c, width):
        super().__init__()
        self.c1 = c // 2
        self.net = coupling_net(self.c1, 2 * (c - self.c1), width)

    def flow(self, x, reverse=False):
        z1, z2 = x[:, : self.c1], x[:, self.c1:]
        h = self.net(z1)
        c2 = z2.shape[1]
        shift, scale = h[:, :c2], torch.sigmoid(h[:, c2:] + 2)
        if reverse:
            return torch.cat([z1, z2 / scale - shift], 1), None
        return torch.cat([z1, (z2 + shift) * scale], 1), torch.log(scale).flatten(1).sum(1)


def squeeze(x):
    n, c, h, w = x.shape
    x = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, c * 4, h // 2, w // 2)


def unsqueeze(x):
    n, c4, h, w = x.shape
    x = x.view(n, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(n, c4 // 4, h * 2, w * 2)


def gaussian_logp(z, mean, logs):
    return (-0.5 * LOG2PI - logs - 0.5 * (z - mean) ** 2 * torch.exp(-2 * logs)).flatten(1).sum(1)


class Glow(nn.Module):
    def __init__(self, shape, levels, depth, width, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        h, w, c = shape
        self.dims = h * w * c
        self.levels = nn.ModuleList()
        self.splits = nn.ModuleList()
        for l in range(levels):
            h, w, c = h // 2, w // 2, c * 4
            steps = nn.ModuleList()
            for _ in range(depth):
                steps.append(nn.ModuleList([ActNorm(c), InvConvLU(c, rng), Coupling(c, width)]))
            self.levels.append(steps)
            if l < levels - 1:
                c1 = c // 2
                self.splits.append(ZeroConv(c1, 2 * (c - c1)))
                c = c1
        self.top_mean = nn.Parameter(torch.zeros(1, c, h, w))
        self.top_logs = nn.Parameter(torch.zeros(1, c, h, w))

    def encode(self, x):
        logdet = torch.zeros(x.shape[0])
        logp = torch.zeros(x.shape[0])
        zs = []
        for l, steps in enumerate(self.levels):
            x = squeeze(x)
            for an, inv, cp in steps:
                for m in (an, inv, cp):
                    x, ld = m.flow(x)
                    logdet = logdet + ld
            if l < len(self.splits):
                c1 = x.shape[1] // 2
                z1, z2 = x[:, :c1], x[:, c1:]
                hh = self.splits[l](z1)
                c2 = z2.shape[1]
                logp = logp + gaussian_logp(z2, hh[:, :c2], hh[:, c2:])
                zs.append(z2)
                x = z1
        logp = logp + gaussian_logp(x, self.top_mean, self.top_logs)
        zs.append(x)
        return zs, logdet, logp

    def bpd(self, x, n_bits=8):
        _, logdet, logp = self.encode(x)
        return (-(logdet + logp) / (self.dims * math.log(2)) + n_bits).mean()

    @torch.no_grad()
    def sample(self, n, t=0.7):
        x = self.top_mean + t * torch.exp(self.top_logs) * torch.randn(n, *self.top_mean.shape[1:])
        for l in reversed(range(len(self.levels))):
            if l < len(self.splits):
                hh = self.splits[l](x)
                c2 = hh.shape[1] // 2
                z2 = hh[:, :c2] + t * torch.exp(hh[:, c2:]) * torch.randn_like(hh[:, :c2])
                x = torch.cat([x, z2], 1)
            for an, inv, cp in reversed(self.levels[l]):
                for m in (cp, inv, an):
                    x, _ = m.flow(x, reverse=True)
            x = unsqueeze(x)
        return x


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="fmnist-small", choices=sorted(CONFIGS))
    ap.add_argument("--what", default="train", choices=["train", "encode", "sample"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--depth", type=int, default=None, help="override the config's depth")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = dict(CONFIGS[args.config])
    if args.depth:
        cfg["depth"] = args.depth
    h, w, c = cfg["shape"]
    n = cfg["batch"]
    model = Glow(cfg["shape"], cfg["levels"], cfg["depth"], cfg["width"])
    x = torch.rand(n, c, h, w) - 0.5
    with torch.no_grad():
        model.bpd(x)  # data-dependent init
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def once():
        if args.what == "train":
            opt.zero_grad()
            loss = model.bpd(x)
            loss.backward()
            opt.step()
        elif args.what == "encode":
            with torch.no_grad():
                model.encode(x)
        else:
            model.sample(n)

    once()  # warm-up
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    print(json.dumps({"config": args.config, "depth": cfg["depth"], "what": args.what, "batch": n, "median_s": med,
                      "images_per_s": n / med, "peak_rss_mib": peak_rss_mib(),
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
