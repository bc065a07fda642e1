/**
 * A stitch's checkpoint (`checkpoint.safetensors` in the run folder, written atomically): the
 * current phase's parameters and AdamW moments, phase 1's final connector once phase 2 runs, the
 * loss curves, the chosen stitch point and a fingerprint of the settings, so `--resume` continues
 * exactly where the run stopped and refuses a checkpoint made with other settings.
 *
 * @example
 *   saveCheckpoint('runs/s/checkpoint.safetensors', { fingerprint, at, candidates, phase: 1, state });
 *   const c = loadCheckpoint('runs/s/checkpoint.safetensors');
 */
import { InputError } from '../errors.js';
import type { AdamWState, ParamMap } from '../rl/adamw.js';
import { readSafetensors, writeSafetensors } from '../shards/safetensors.js';
import { f32, type Tensor } from '../shards/tensor.js';
import type { PhaseState } from './phases.js';

/** A stitch-point candidate and the held-out error of its linear map. */
export interface CandidateError {
  tensor: string;
  /** Held-out relative MSE of the ridge map; null when the tensor's grid does not fit the connector. */
  heldout_relative_mse: number | null;
  note?: string;
}

export interface Checkpoint {
  fingerprint: string;
  at: string;
  candidates: CandidateError[];
  phase: 1 | 2;
  state: PhaseState;
  /** Phase 1's final values and curve (kept once phase 2 runs). */
  phase1?: { values: ParamMap; curve: number[] };
}

/**
 * Write the checkpoint atomically.
 *
 * @example
 *   saveCheckpoint(path, { fingerprint, at, candidates, phase: 2, state, phase1 });
 */
export function saveCheckpoint(path: string, c: Checkpoint): void {
  const tensors = new Map<string, Tensor>();
  const put = (prefix: string, m: ParamMap) => {
    for (const [k, v] of m) tensors.set(`${prefix}${k}`, f32([v.length], v));
  };
  put('param/', c.state.values);
  put('adam_m/', c.state.adam.expAvg);
  put('adam_v/', c.state.adam.expAvgSq);
  if (c.phase1) put('phase1/', c.phase1.values);
  const meta = {
    fingerprint: c.fingerprint,
    at: c.at,
    candidates: c.candidates,
    phase: c.phase,
    step: c.state.step,
    adam_step: c.state.adam.step,
    curve: c.state.curve,
    phase1_curve: c.phase1?.curve ?? null,
  };
  writeSafetensors(path, tensors, {
    'vggrpo.kind': 'stitch-checkpoint',
    'vggrpo.stitch': JSON.stringify(meta),
  });
}

/**
 * Read a checkpoint; a file that is not one is an InputError naming it.
 *
 * @example
 *   const { phase, state } = loadCheckpoint(path);
 */
export function loadCheckpoint(path: string): Checkpoint {
  const { tensors, metadata } = readSafetensors(path);
  let meta: any;
  try {
    meta = JSON.parse(metadata['vggrpo.stitch'] ?? '');
  } catch {
    throw new InputError(path, 'not a stitch checkpoint (no vggrpo.stitch metadata)');
  }
  const take = (prefix: string): ParamMap => {
    const m: ParamMap = new Map();
    for (const [k, t] of tensors)
      if (k.startsWith(prefix)) m.set(k.slice(prefix.length), Float32Array.from(t.data as Float32Array));
    return m;
  };
  const adam: AdamWState = { step: meta.adam_step, expAvg: take('adam_m/'), expAvgSq: take('adam_v/') };
  const p1 = take('phase1/');
  return {
    fingerprint: meta.fingerprint,
    at: meta.at,
    candidates: meta.candidates,
    phase: meta.phase,
    state: { phase: meta.phase, step: meta.step, values: take('param/'), adam, curve: meta.curve },
    phase1: meta.phase1_curve ? { values: p1, curve: meta.phase1_curve } : undefined,
  };
}
