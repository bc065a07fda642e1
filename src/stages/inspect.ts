/**
 * `inspect`: what is in a shard (kind, metadata, every tensor with statistics) or an .onnx
 * model (inputs, outputs, operator counts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { readSafetensors } from '../shards/safetensors.js';
import { type Tensor, toFloat32 } from '../shards/tensor.js';

export interface TensorSummary {
  name: string;
  dtype: string;
  shape: number[];
  min: number | null;
  max: number | null;
  mean: number | null;
  nan: number;
  inf: number;
}

export interface ShardSummary {
  type: 'shard';
  path: string;
  kind: string | null;
  metadata: Record<string, string>;
  tensors: TensorSummary[];
}

export interface OnnxSummary {
  type: 'onnx';
  path: string;
  opset: { domain: string; version: number }[];
  inputs: { name: string; dtype: string; shape: (number | string | null)[] }[];
  outputs: { name: string; dtype: string; shape: (number | string | null)[] }[];
  initializers: { count: number; parameters: number };
  ops: Record<string, number>;
}

export function summariseTensor(name: string, t: Tensor): TensorSummary {
  const d = t.dtype === 'I64' ? Float64Array.from(t.data as BigInt64Array, Number) : toFloat32(t);
  let min = Number.POSITIVE_INFINITY;
  let max = Number.NEGATIVE_INFINITY;
  let sum = 0;
  let n = 0;
  let nan = 0;
  let inf = 0;
  for (let i = 0; i < d.length; i++) {
    const v = d[i]!;
    if (Number.isNaN(v)) nan++;
    else if (!Number.isFinite(v)) inf++;
    else {
      if (v < min) min = v;
      if (v > max) max = v;
      sum += v;
      n++;
    }
  }
  return {
    name,
    dtype: t.dtype,
    shape: t.shape,
    min: n ? min : null,
    max: n ? max : null,
    mean: n ? sum / n : null,
    nan,
    inf,
  };
}

export function inspectShard(path: string): ShardSummary {
  const { tensors, metadata } = readSafetensors(path);
  return {
    type: 'shard',
    path,
    kind: metadata['vggrpo.kind'] ?? null,
    metadata,
    tensors: [...tensors].map(([name, t]) => summariseTensor(name, t)),
  };
}

export type Summary = ShardSummary | OnnxSummary;

export async function inspectFile(path: string): Promise<Summary> {
  // A policy checkpoint folder: its adapter (with state.json's step and metrics as metadata).
  if (existsSync(join(path, 'adapter_model.safetensors'))) {
    const s = inspectShard(join(path, 'adapter_model.safetensors'));
    const state = join(path, 'state.json');
    if (existsSync(state)) s.metadata['state.json'] = JSON.stringify(JSON.parse(readFileSync(state, 'utf8')));
    return { ...s, path, kind: 'policy' };
  }
  if (extname(path) === '.onnx') {
    const { inspectOnnx } = await import('./inspect-onnx.js');
    return inspectOnnx(path);
  }
  return inspectShard(path);
}

/** Human-readable form for the terminal. */
export function formatSummary(s: Summary): string {
  const lines: string[] = [];
  if (s.type === 'shard') {
    lines.push(`${s.path}  kind: ${s.kind ?? '(none)'}`);
    for (const [k, v] of Object.entries(s.metadata)) {
      const shown = v.length > 160 ? `${v.slice(0, 157)}...` : v;
      lines.push(`  meta ${k} = ${shown}`);
    }
    const w = Math.max(8, ...s.tensors.map((t) => t.name.length));
    for (const t of s.tensors) {
      const stats =
        t.min === null ? 'no finite values' : `min ${fmt(t.min)}  max ${fmt(t.max!)}  mean ${fmt(t.mean!)}`;
      const bad = t.nan || t.inf ? `  NaN ${t.nan}  Inf ${t.inf}` : '  NaN 0';
      lines.push(`  ${t.name.padEnd(w)}  ${t.dtype.padEnd(4)} [${t.shape.join(', ')}]  ${stats}${bad}`);
    }
  } else {
    lines.push(
      `${s.path}  onnx  opset ${s.opset.map((o) => `${o.domain || 'ai.onnx'}:${o.version}`).join(', ')}`,
    );
    for (const i of s.inputs) lines.push(`  input  ${i.name}: ${i.dtype} [${i.shape.join(', ')}]`);
    for (const o of s.outputs) lines.push(`  output ${o.name}: ${o.dtype} [${o.shape.join(', ')}]`);
    lines.push(`  initializers: ${s.initializers.count} (${s.initializers.parameters} parameters)`);
    lines.push(
      `  ops: ${Object.entries(s.ops)
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k}×${v}`)
        .join(' ')}`,
    );
  }
  return lines.join('\n');
}

function fmt(v: number): string {
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : v.toFixed(4);
}
