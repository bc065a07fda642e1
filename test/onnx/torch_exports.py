#!/usr/bin/python3
"""Small PyTorch models exported with torch.onnx.export, for test/onnx/torch-exports.test.ts.

  tied: freshly initialised LayerNorms (equal weights: the exporter stores them once and
        re-creates the other names with Identity) and a GroupNorm (exported through
        InstanceNormalization)
  rope: a rotary embedding written by slice assignment (exported as ScatterND)

Writes model.onnx, the input x, a cotangent for y, PyTorch's y and every named parameter's
autograd gradient (raw little-endian float32) and manifest.json to --out.

  /usr/bin/python3 test/onnx/torch_exports.py --model tied --out /tmp/tied
"""
import argparse
import json
import os

import torch
from torch import nn


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 8)
        self.ln1 = nn.LayerNorm(8)
        self.ln2 = nn.LayerNorm(8)
        self.fc2 = nn.Linear(8, 8)
        self.ln3 = nn.LayerNorm(8)
        self.gn = nn.GroupNorm(2, 4)

    def forward(self, x):
        h = self.ln2(torch.tanh(self.ln1(self.fc1(x))))
        h = self.ln3(self.fc2(h) + h)
        return self.gn(h.reshape(2, 4, 2, 8))


class Rope(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(8, 8)
        self.k = nn.Linear(8, 8)
        t = torch.arange(6.0)[:, None] * (1.0 / 10000 ** (torch.arange(0, 8, 2.0) / 8))[None]
        self.register_buffer('cos', t.cos())
        self.register_buffer('sin', t.sin())

    def rope(self, q):
        a, b = q[..., 0::2], q[..., 1::2]
        out = torch.zeros_like(q)
        out[..., 0::2] = a * self.cos - b * self.sin
        out[..., 1::2] = a * self.sin + b * self.cos
        return out

    def forward(self, x):
        q, k = self.rope(self.q(x)), self.rope(self.k(x))
        return torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ x


class Ffn(nn.Module):
    """Linear → GELU → Linear: the exporter writes GELU (no Gelu op before opset 20) in primitives."""

    def __init__(self, approximate):
        super().__init__()
        self.up = nn.Linear(8, 32)
        self.act = nn.GELU(approximate=approximate)
        self.down = nn.Linear(32, 8)

    def forward(self, x):
        return self.down(self.act(self.up(x)))


MODELS = {
    'tied': (Tied, (2, 8, 8)),
    'rope': (Rope, (2, 6, 8)),
    'gelu_tanh': (lambda: Ffn('tanh'), (2, 5, 8)),
    'gelu_erf': (lambda: Ffn('none'), (2, 5, 8)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', choices=sorted(MODELS), required=True)
    ap.add_argument('--out', required=True)
    a = ap.parse_args()
    torch.manual_seed(0)
    make, shape = MODELS[a.model]
    m = make()
    x = torch.randn(*shape)
    os.makedirs(a.out, exist_ok=True)
    torch.onnx.export(m, (x,), os.path.join(a.out, 'model.onnx'), opset_version=17,
                      do_constant_folding=False, input_names=['x'], output_names=['y'])
    y = m(x)
    cot = torch.randn_like(y)
    (y * cot).sum().backward()
    files = {}

    def put(key, t):
        t.detach().contiguous().float().numpy().astype('<f4').tofile(os.path.join(a.out, f'{key}.f32'))
        files[key] = {'file': f'{key}.f32', 'shape': list(t.shape)}

    put('x', x)
    put('cotangent', cot)
    put('y', y)
    params = []
    for i, (name, p) in enumerate(m.named_parameters()):
        put(f'p{i}', p.grad)
        params.append({'name': name, **files[f'p{i}']})
    with open(os.path.join(a.out, 'manifest.json'), 'w') as f:
        json.dump({'files': files, 'params': params}, f)


if __name__ == '__main__':
    main()
