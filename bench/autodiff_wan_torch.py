#!/usr/bin/python3
"""PyTorch peer of bench/autodiff.ts's realistic-width case: the Wan2.1-shaped denoiser that
onnx/wan-builder.ts writes, in PyTorch eager, with the weights read from that model's file.

Reads --model (the .onnx and its .data beside it; Linear weights are stored [in, out]), --inputs
(a folder with latents/timestep/context/cotangent .f32 files and shapes.json), times eager
forward+backward at --threads (median of --runs after one warm-up) and reports, as one JSON line:
the median wall and CPU milliseconds, the resident-set high-water mark's growth over what the
process held before reading the weights (weights, gradients and activations, as ours is
measured), the BLAS library torch has mapped, and, for the sanity check, the output and the
gradients of the parameters named in --check (raw float32 files in --out).

  /usr/bin/python3 bench/autodiff_wan_torch.py --model /tmp/wan/m.onnx --inputs /tmp/wan --out /tmp/wan/torch --runs 2
"""
import argparse
import json
import math
import os
import resource
import statistics
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def hwm_mib():
    """VmHWM of this process (MiB)."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def blas_library():
    """The BLAS shared objects mapped into this process (after a matmul has run)."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    libs = set()
    with open('/proc/self/maps') as f:
        for line in f:
            path = line.split()[-1]
            if 'blas' in os.path.basename(path).lower() or 'mkl' in os.path.basename(path).lower():
                libs.add(os.path.realpath(path))
    return sorted(libs)


def read_weights(path):
    """Every float initializer of the model: external ones read range by range from the .data file."""
    m = onnx.load(path, load_external_data=False)
    out = {}
    folder = os.path.dirname(path)
    for t in m.graph.initializer:
        if t.data_type != onnx.TensorProto.FLOAT:
            continue
        if t.data_location == onnx.TensorProto.EXTERNAL:
            ext = {e.key: e.value for e in t.external_data}
            n = int(np.prod(t.dims)) if len(t.dims) else 1
            a = np.fromfile(os.path.join(folder, ext['location']), dtype='<f4', count=n,
                            offset=int(ext.get('offset', 0))).reshape(tuple(t.dims))
        else:
            a = numpy_helper.to_array(t).copy()
        out[t.name] = torch.from_numpy(np.ascontiguousarray(a))
    return out


class Wan(torch.nn.Module):
    """onnx/wan-builder.ts's graph, op for op (weights [in, out], tanh-GELU, eps 1e-6)."""

    def __init__(self, w, blocks, heads, grid, patch, channels, rope):
        super().__init__()
        self.names = [k for k in w if not k.startswith('__')]
        self.p = torch.nn.ParameterDict({k.replace('.', '__'): torch.nn.Parameter(v) for k, v in w.items()
                                         if k in self.names})
        self.blocks, self.heads, self.grid, self.patch, self.c = blocks, heads, grid, patch, channels
        self.cos, self.sin = rope

    def w(self, name):
        return self.p[name.replace('.', '__')]

    def linear(self, x, name):
        return x @ self.w(name + '.weight') + self.w(name + '.bias')

    def rms(self, x, name):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6) * self.w(name + '.weight')

    def rope(self, v):
        b, n, h, d = v.shape
        a, c = v.reshape(b, n, h, d // 2, 2).split(1, dim=4)
        re = a * self.cos - c * self.sin
        im = a * self.sin + c * self.cos
        return torch.cat([re, im], dim=4).reshape(b, n, h, d)

    def attention(self, name, xq, xkv, rotary):
        b, n, dim = xq.shape
        hd = dim // self.heads
        q = self.rms(self.linear(xq, name + '.q'), name + '.norm_q').reshape(b, n, self.heads, hd)
        k = self.rms(self.linear(xkv, name + '.k'), name + '.norm_k').reshape(b, -1, self.heads, hd)
        v = self.linear(xkv, name + '.v').reshape(b, -1, self.heads, hd)
        if rotary:
            q, k = self.rope(q), self.rope(k)
        qh = (q * (1 / math.sqrt(hd))).transpose(1, 2)
        p = torch.softmax(qh @ k.permute(0, 2, 3, 1), dim=-1)
        o = p @ v.transpose(1, 2)
        return self.linear(o.transpose(1, 2).reshape(b, n, dim), name + '.o')

    def forward(self, latents, timestep, context):
        b, c, f, hh, ww = latents.shape
        dim = self.w('patch_embedding.bias').shape[0]
        gelu = lambda v: F.gelu(v, approximate='tanh')  # noqa: E731
        ln = lambda v: F.layer_norm(v, (dim,), eps=1e-6)  # noqa: E731
        x = F.conv3d(latents, self.w('patch_embedding.weight'), self.w('patch_embedding.bias'),
                     stride=self.patch)
        x = x.reshape(b, dim, -1).transpose(1, 2)
        half = self.w('time_embedding.0.weight').shape[0] // 2
        freqs = torch.tensor([10000 ** (-k / half) for k in range(half)], dtype=torch.float32)
        arg = timestep[:, None] * freqs
        tcode = torch.cat([torch.cos(arg), torch.sin(arg)], dim=1)
        e = self.linear(F.silu(self.linear(tcode, 'time_embedding.0')), 'time_embedding.2')
        e0 = self.linear(F.silu(e), 'time_projection.1').reshape(b, 6, dim)
        ctx = self.linear(gelu(self.linear(context, 'text_embedding.0')), 'text_embedding.2')
        for i in range(self.blocks):
            p = f'blocks.{i}'
            sh_a, sc_a, g_a, sh_f, sc_f, g_f = (self.w(p + '.modulation') + e0).split(1, dim=1)
            xn = ln(x) * (sc_a + 1) + sh_a
            x = x + self.attention(p + '.self_attn', xn, xn, True) * g_a
            xc = F.layer_norm(x, (dim,), self.w(p + '.norm3.weight'), self.w(p + '.norm3.bias'), eps=1e-6)
            x = x + self.attention(p + '.cross_attn', xc, ctx, False)
            h = ln(x) * (sc_f + 1) + sh_f
            x = x + self.linear(gelu(self.linear(h, p + '.ffn.0')), p + '.ffn.2') * g_f
        shift, scale = (self.w('head.modulation') + e[:, None, :]).split(1, dim=1)
        out = self.linear(ln(x) * (scale + 1) + shift, 'head.head')
        pf, ph, pw = self.patch
        out = out.reshape(b, *self.grid, pf, ph, pw, self.c).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return out.reshape(b, self.c, f, hh, ww)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True)
    ap.add_argument('--inputs', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--runs', type=int, default=2)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--check', default='[]', help='JSON list of parameter names whose gradients to write')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    meta = json.load(open(os.path.join(a.inputs, 'shapes.json')))
    load = lambda k: torch.from_numpy(np.fromfile(os.path.join(a.inputs, k + '.f32'), dtype='<f4')  # noqa: E731
                                      .reshape(meta['shapes'][k]))
    latents, timestep, context, cot = (load(k) for k in ('latents', 'timestep', 'context', 'cotangent'))
    blas = blas_library()
    base = hwm_mib()
    w = read_weights(a.model)
    rope = [w.pop(n) for n in meta['rope']]
    model = Wan({k: v for k, v in w.items() if k in meta['params']}, meta['blocks'], meta['heads'],
                meta['grid'], meta['patch'], meta['channels'], rope)
    del w
    wall, cpu = [], []
    for i in range(a.runs + 1):
        model.zero_grad(set_to_none=True)
        t0, c0 = time.perf_counter(), time.process_time()
        out = model(latents, timestep, context)
        out.backward(cot)
        t1, c1 = time.perf_counter(), time.process_time()
        if i > 0:
            wall.append((t1 - t0) * 1e3)
            cpu.append((c1 - c0) * 1e3)
    peak = hwm_mib() - base
    out.detach().numpy().tofile(os.path.join(a.out, 'velocity.f32'))
    for k in json.loads(a.check):
        model.w(k).grad.numpy().tofile(os.path.join(a.out, 'grad.' + k + '.f32'))
    print(json.dumps(dict(
        torch_version=torch.__version__, threads=torch.get_num_threads(), blas=blas,
        fwd_bwd_ms=statistics.median(wall) if wall else None,
        fwd_bwd_cpu_ms=statistics.median(cpu) if cpu else None,
        peak_growth_mib=peak,
    )))


if __name__ == '__main__':
    main()
