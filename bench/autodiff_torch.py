#!/usr/bin/python3
"""PyTorch peer of bench/autodiff.ts: the toy Wan-style DiT of src/onnx/toy-dit.ts in PyTorch.

Exports it with torch.onnx.export (legacy exporter, opset 17, no constant folding so the
weights keep their state-dict names), writes seeded inputs, a cotangent for the output, the
eager forward output and every parameter's autograd gradient as raw little-endian float32, and
times eager forward+backward (one thread, median of --runs). Everything goes to --out:

  model.onnx, <key>.f32 files, manifest.json = {inputs, cotangent, output, params, torch_*}

Run with Debian's /usr/bin/python3 (apt-get install -y python3-torch python3-onnx):

  /usr/bin/python3 bench/autodiff_torch.py --out /tmp/peer --runs 15
  /usr/bin/python3 bench/autodiff_torch.py --out /tmp/peer --runs 0 --dims '{"dim": 16, "heads": 2}'
"""
import argparse
import json
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

# bench/autodiff.ts's DIMS (override any with --dims)
DIMS = dict(batch=1, channels=16, frames=4, height=16, width=16, dim=64, heads=4, layers=2,
            contextLength=16, contextDim=64, mlpRatio=2)


class Block(nn.Module):
    def __init__(self, d, heads, hidden):
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(d // heads)
        # torch 1.13 exports a weightless layer_norm at opset 17 as an invalid node: pass ones
        self.register_buffer('ln_ones', torch.ones(d))
        self.modulation = nn.Linear(d, 6 * d)
        self.self_attn = nn.ModuleDict(dict(q=nn.Linear(d, d), k=nn.Linear(d, d), v=nn.Linear(d, d),
                                             o=nn.Linear(d, d), norm_q=RMSNorm(d), norm_k=RMSNorm(d)))
        self.cross_attn = nn.ModuleDict(dict(q=nn.Linear(d, d), k=nn.Linear(d, d), v=nn.Linear(d, d),
                                              o=nn.Linear(d, d)))
        self.ffn = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate='tanh'), nn.Linear(hidden, d))

    def split(self, x):
        # [B, T, D] -> [B, NH, T, dh], B read from the tensor as exported graphs do
        b, t, d = x.shape[0], x.shape[1], x.shape[2]
        return x.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)

    def merge(self, x):
        b, nh, t, dh = x.shape
        return x.transpose(1, 2).reshape(b, t, nh * dh)

    def attention(self, q, k, v):
        s = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        return torch.matmul(torch.softmax(s, dim=-1), v)

    def forward(self, x, tact, ctx):
        b, _, d = x.shape
        mod = self.modulation(tact).reshape(b, 6, d)
        sh1, sc1, g1, sh2, sc2, g2 = mod.chunk(6, dim=1)
        sa = self.self_attn
        h = F.layer_norm(x, (d,), self.ln_ones, eps=1e-6) * (sc1 + 1) + sh1
        q = self.split(sa['norm_q'](sa['q'](h)))
        k = self.split(sa['norm_k'](sa['k'](h)))
        v = self.split(sa['v'](h))
        x = x + sa['o'](self.merge(self.attention(q, k, v))) * g1
        ca = self.cross_attn
        hc = F.layer_norm(x, (d,), self.ln_ones, eps=1e-6)
        x = x + ca['o'](self.merge(self.attention(self.split(ca['q'](hc)), self.split(ca['k'](ctx)),
                                                  self.split(ca['v'](ctx)))))
        hm = F.layer_norm(x, (d,), self.ln_ones, eps=1e-6) * (sc2 + 1) + sh2
        return x + self.ffn(hm) * g2


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d) + 0.1 * (torch.rand(d) - 0.5))

    def forward(self, x):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


class ToyDit(nn.Module):
    def __init__(self, o):
        super().__init__()
        self.o = o
        d, c = o['dim'], o['channels']
        self.patch_embedding = nn.Conv3d(c, d, kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.time_embedding = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.text_embedding = nn.Linear(o['contextDim'], d)
        hidden = d * o['mlpRatio']
        self.blocks = nn.ModuleList([Block(d, o['heads'], hidden) for _ in range(o['layers'])])
        self.head = nn.ModuleDict(dict(head=nn.Linear(d, c * 4)))
        half = d // 2
        self.register_buffer('ln_ones', torch.ones(d))
        self.register_buffer('freqs', torch.exp(-math.log(10000) * torch.arange(half) / half)[None, :])

    def forward(self, latents, timestep, context):
        b, c, f, h, w = latents.shape
        d = self.o['dim']
        x = self.patch_embedding(latents).reshape(b, d, -1).transpose(1, 2)
        targ = timestep[:, None] * self.freqs
        temb = self.time_embedding(torch.cat([torch.cos(targ), torch.sin(targ)], dim=1))
        tact = F.silu(temb)
        ctx = self.text_embedding(context)
        for blk in self.blocks:
            x = blk(x, tact, ctx)
        out = self.head['head'](F.layer_norm(x, (d,), self.ln_ones, eps=1e-6))
        out = out.reshape(b, f, h // 2, w // 2, c, 2, 2).permute(0, 4, 1, 2, 5, 3, 6)
        return out.reshape(b, c, f, h, w)


def save(out, key, t):
    t.detach().contiguous().float().numpy().tofile(os.path.join(out, key + '.f32'))
    return dict(file=key + '.f32', shape=list(t.shape))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--dims', default='{}')
    ap.add_argument('--runs', type=int, default=15)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--seed', type=int, default=1)
    a = ap.parse_args()
    o = dict(DIMS, **json.loads(a.dims))
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    model = ToyDit(o).float()
    B, C = o['batch'], o['channels']
    latents = torch.rand(B, C, o['frames'], o['height'], o['width']) - 0.5
    timestep = torch.full((B,), 0.5)
    context = torch.rand(B, o['contextLength'], o['contextDim']) - 0.5
    args = (latents, timestep, context)
    # resident-set high-water mark before any forward, so the growth is the passes' memory
    import resource
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    out = model(*args)
    cot = torch.rand_like(out) - 0.5
    model.zero_grad(set_to_none=True)
    out.backward(cot)
    params = [dict(name=n, **save(a.out, f'grad{i}', p.grad)) for i, (n, p) in
              enumerate(model.named_parameters())]

    fb, fw = [], []
    if a.runs > 0:
        with torch.no_grad():
            model(*args)
        for _ in range(a.runs):
            t0 = time.perf_counter()
            with torch.no_grad():
                model(*args)
            t1 = time.perf_counter()
            model.zero_grad(set_to_none=True)
            model(*args).backward(cot)
            t2 = time.perf_counter()
            fw.append((t1 - t0) * 1e3)
            fb.append((t2 - t1) * 1e3)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    torch.onnx.export(model, args, os.path.join(a.out, 'model.onnx'), opset_version=17,
                      input_names=['latents', 'timestep', 'context'], output_names=['velocity'],
                      do_constant_folding=False)
    manifest = dict(
        torch_version=torch.__version__, threads=torch.get_num_threads(), dims=o,
        inputs={k: save(a.out, k, v) for k, v in zip(['latents', 'timestep', 'context'], args)},
        cotangent=save(a.out, 'cotangent', cot), output=save(a.out, 'velocity', out), params=params,
        torch_forward_ms=statistics.median(fw) if fw else None,
        torch_fwd_bwd_ms=statistics.median(fb) if fb else None,
        torch_peak_rss_mib=peak_rss, torch_rss_growth_mib=peak_rss - base_rss,
    )
    with open(os.path.join(a.out, 'manifest.json'), 'w') as f:
        json.dump(manifest, f)
    print(json.dumps(dict((k, v) for k, v in manifest.items() if k.startswith('torch'))))


if __name__ == '__main__':
    main()
