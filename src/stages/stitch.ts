/**
 * Stage `stitch`: build a latent geometry model LGM = Φ_{ℓ+1:L} ∘ C from an RGB geometry model Φ
 * and a VAE encoder E (onnx/README.md, Stitching): encode the videos, run Φ on the frames at the
 * latent-frame positions, choose ℓ (`--at auto`: ridge maps scored on held-out videos), fit C
 * (phase 1), fine-tune C and Φ_{ℓ+1:L} (phase 2), and write the run folder: lgm.onnx,
 * lgm-config.yaml (the `models.lgm` and `lgm_outputs` for it), checkpoint.safetensors,
 * curves.csv + curves.svg and stitch.json.
 *
 * @example
 *   const r = await runStitch({ geometryModel: 'phi.onnx', encoder: 'enc.onnx', toyVideos: 32, at: 'auto', out: 'runs/stitch', config }, log, emit);
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { renderSvg, lineSpec } from '../media/plots.js';
import { candidateList, tensorNames } from '../onnx/cut.js';
import { encodeModel, loadModel, saveModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/proto.js';
import type { AdamWState, ParamMap } from '../rl/adamw.js';
import { hashString } from '../rl/prng.js';
import { ModelSession } from '../runtime/session.js';
import { atomicWrite } from '../shards/atomic.js';
import { readSafetensors, writeSafetensors } from '../shards/safetensors.js';
import { f32, type Tensor } from '../shards/tensor.js';
import {
  type ConnectorSpec,
  connectorFromPatchMap,
  connectorGrid,
  parseConnector,
  type StitchLayout,
} from '../stitch/connector.js';
import { buildConnectorModel, buildStitchedLgm } from '../stitch/lgm.js';
import { type LossTerm, type PhaseSettings, type PhaseState, runPhase } from '../stitch/phases.js';
import {
  applyMap,
  patchFeatures,
  RelativeError,
  RidgeFit,
  stitchCandidates,
  type TokenGrid,
  tokenRows,
} from '../stitch/stitch-point.js';
import { framesAt, latentFramePositions, runBatched, stitchRuntime, type Values, withOutputs } from '../stitch/targets.js';
import { readVideos, toyVideos, type Videos } from '../stitch/videos.js';

export interface StitchOptions {
  geometryModel?: string;
  encoder?: string;
  /** A folder of mp4 files, of PNG-frame folders, or shards with `rgb`. */
  videos?: string;
  /** Instead of `videos`: this many toy-world training videos (plus the held-out fraction from the held-out split). */
  toyVideos?: number;
  /** A tensor of Φ, or `auto`. */
  at: string;
  connector?: string;
  out: string;
  resume?: boolean;
  seed?: number;
  config: Config;
  signal?: AbortSignal;
}

export interface CandidateError {
  tensor: string;
  /** Held-out relative MSE of the ridge map; null when the tensor's grid does not fit the connector. */
  heldout_relative_mse: number | null;
  note?: string;
}

export interface StitchResult {
  out: string;
  lgm: string;
  lgm_config: string;
  at: string;
  candidates: CandidateError[];
  phase1: { steps: number; final_loss: number | null; heldout_relative_mse: number };
  phase2: {
    steps: number;
    final_loss: number | null;
    /** Per output: held-out relative MSE of the LGM against Φ, after phase 1 and after phase 2. */
    heldout_relative_mse: Record<string, { after_phase1: number; after_phase2: number }>;
  };
  videos: { train: number; heldout: number };
  seconds: number;
  written: string[];
}

/** Φ's output names by role (`geometry_outputs.*`), only those Φ has. */
function phiOutputs(config: Config, phi: ModelProto): Map<string, string> {
  const go = config.geometry_outputs;
  const have = new Set((phi.graph?.output ?? []).map((o) => o.name ?? ''));
  const roles: [string, string | null][] = [
    ['depth', go.depth],
    ['points', go.points],
    ['confidence', go.confidence],
    ['cameras', go.cameras],
    ['scene_flow', go.scene_flow],
    ['intrinsics_output', go.intrinsics_output],
    ['dynamic_mask', go.dynamic_mask],
  ];
  const out = new Map<string, string>();
  for (const [role, name] of roles) if (name && have.has(name)) out.set(role, name);
  if (!out.has('depth') || !out.has('cameras')) {
    throw new InputError('--geometry-model', `has no '${go.depth}' or '${go.cameras}' output (geometry_outputs.depth / .cameras)`);
  }
  return out;
}

/** A model path that exists, or an InputError naming the flag. */
function modelPath(path: string | null | undefined, flag: string, key: string): string {
  if (!path) throw new InputError(flag, `no model given (flag or config ${key})`);
  if (!existsSync(path)) throw new InputError(flag, `${path}: model file not found`);
  return path;
}

/** Static dims of an input [B, F, 3, H, W] (undefined where dynamic). */
function frameDims(model: ModelProto, flag: string): { name: string; frames?: number; height?: number; width?: number } {
  const v = model.graph?.input?.find((i) => !(model.graph?.initializer ?? []).some((t) => t.name === i.name));
  const dims = v?.type?.tensorType?.shape?.dim ?? [];
  if (!v || dims.length !== 5) throw new InputError(flag, 'expected one input frames [B, F, 3, H, W]');
  const d = (i: number) => (dims[i]?.dimValue !== undefined && dims[i]!.dimValue! > 0 ? dims[i]!.dimValue : undefined);
  return { name: v.name ?? '', frames: d(1), height: d(3), width: d(4) };
}

/** How the stitch tensor is laid out, its width, and whether its grid fits the connector's; a fault text when not. */
function fitOf(
  shape: number[],
  latent: number[],
  spec: ConnectorSpec,
): { layout: StitchLayout; width: number; grid: TokenGrid } | string {
  const [Fp, h, w] = connectorGrid(latent, spec);
  const grid: TokenGrid = { frames: Fp, height: h, width: w, patch: [spec.stride[1], spec.stride[2]] };
  if (shape.length === 2) {
    if (shape[0] !== Fp * h * w) {
      return `has ${shape[0]} tokens but latents [${latent}] give a connector grid ${Fp}×${h}×${w} = ${Fp * h * w}`;
    }
    return { layout: 'tokens', width: shape[1]!, grid };
  }
  if (shape.length === 4) {
    if (shape[1] !== Fp || shape[2] !== h || shape[3] !== w) {
      return `is a grid [${shape}] but latents [${latent}] give a connector grid ${Fp}×${h}×${w}`;
    }
    return { layout: 'grid', width: shape[0]!, grid };
  }
  return `has shape [B, ${shape}]; expected tokens [B, N, D] or a grid [B, D, F', h, w]`;
}

/** Ridge fit per candidate on the training videos, scored on the held-out ones. */
function scoreCandidates(
  names: string[],
  feats: Map<string, Values>,
  latents: Values,
  nTrain: number,
  spec: ConnectorSpec,
  lambda: number,
): { errors: CandidateError[]; maps: Map<string, Float64Array> } {
  const errors: CandidateError[] = [];
  const maps = new Map<string, Float64Array>();
  for (const name of names) {
    const v = feats.get(name)!;
    const fit = fitOf(v.shape, latents.shape, spec);
    if (typeof fit === 'string') {
      errors.push({ tensor: name, heldout_relative_mse: null, note: fit });
      continue;
    }
    const N = fit.grid.frames * fit.grid.height * fit.grid.width;
    const P1 = latents.shape[0]! * fit.grid.patch[0] * fit.grid.patch[1] + 1;
    const ridge = new RidgeFit(P1, fit.width);
    for (let k = 0; k < nTrain; k++) {
      ridge.add(patchFeatures(latents.data[k]!, latents.shape, fit.grid), tokenRows(v.data[k]!, N, fit.width, fit.layout), N);
    }
    const M = ridge.solve(lambda);
    const rel = new RelativeError(ridge.mean());
    for (let k = nTrain; k < v.data.length; k++) {
      const X = patchFeatures(latents.data[k]!, latents.shape, fit.grid);
      rel.add(applyMap(X, M, N, P1, fit.width), tokenRows(v.data[k]!, N, fit.width, fit.layout));
    }
    maps.set(name, M);
    errors.push({ tensor: name, heldout_relative_mse: rel.value() });
  }
  return { errors, maps };
}

interface Checkpoint {
  fingerprint: string;
  at: string;
  candidates: CandidateError[];
  phase: 1 | 2;
  state: PhaseState;
  /** Phase 1's final values and curve (kept once phase 2 runs). */
  phase1?: { values: ParamMap; curve: number[] };
}

function saveCheckpoint(path: string, c: Checkpoint): void {
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
  writeSafetensors(path, tensors, { 'vggrpo.kind': 'stitch-checkpoint', 'vggrpo.stitch': JSON.stringify(meta) });
}

function loadCheckpoint(path: string): Checkpoint {
  const { tensors, metadata } = readSafetensors(path);
  let meta: any;
  try {
    meta = JSON.parse(metadata['vggrpo.stitch'] ?? '');
  } catch {
    throw new InputError(path, 'not a stitch checkpoint (no vggrpo.stitch metadata)');
  }
  const take = (prefix: string): ParamMap => {
    const m: ParamMap = new Map();
    for (const [k, t] of tensors) if (k.startsWith(prefix)) m.set(k.slice(prefix.length), Float32Array.from(t.data as Float32Array));
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

/** Held-out relative MSE of a model's outputs against targets, per output. */
async function heldoutErrors(
  model: ModelProto,
  input: string,
  latents: Values,
  from: number,
  targets: Map<string, Values>,
  names: string[],
  rt: { device: 'cpu' | 'cuda'; threads: number },
  batch: number,
): Promise<Record<string, number>> {
  const s = await ModelSession.open(encodeModel(model), rt, 'stitched model');
  const out = await runBatched(s, input, latents.data.slice(from), latents.shape, names, batch);
  await s.release();
  const res: Record<string, number> = {};
  for (const n of names) {
    const t = targets.get(n)!;
    const mean = new Float64Array(1);
    let cnt = 0;
    for (let k = 0; k < from; k++) for (const x of t.data[k]!) (mean[0]! += x), cnt++;
    mean[0]! /= Math.max(1, cnt);
    const rel = new RelativeError(mean);
    out.get(n)!.data.forEach((p, k) => {
      rel.add(p, t.data[from + k]!);
    });
    res[n] = rel.value();
  }
  return res;
}

/**
 * Run a stitch end to end (see the module comment); `emit` gets each path written.
 *
 * @example
 *   await runStitch({ ...opts, at: 'auto' }, (m) => process.stderr.write(`${m}\n`), console.log);
 */
export async function runStitch(
  o: StitchOptions,
  progress: (msg: string) => void,
  emit: (path: string) => void,
): Promise<StitchResult> {
  const t0 = Date.now();
  const cfg = o.config;
  const sc = cfg.stitch;
  const rt = stitchRuntime(cfg);
  const phiPath = modelPath(o.geometryModel ?? cfg.models.geometry, '--geometry-model', 'models.geometry');
  const encPath = modelPath(o.encoder ?? cfg.models.vae_encoder, '--encoder', 'models.vae_encoder');
  const phi = loadModel(phiPath);
  const enc = loadModel(encPath);
  const spec = parseConnector(o.connector);
  const encIn = frameDims(enc, '--encoder');
  const phiIn = frameDims(phi, '--geometry-model');
  const roles = phiOutputs(cfg, phi);
  const t = cfg.vae.temporal_compression;

  // The videos, split into training and held-out.
  let train: Videos;
  let heldout: Videos;
  if (o.toyVideos !== undefined) {
    const nh = Math.max(1, Math.round((o.toyVideos * sc.heldout_fraction) / (1 - sc.heldout_fraction)));
    ({ train, heldout } = toyVideos(o.toyVideos, nh, o.seed ?? 0));
    const want = { frames: encIn.frames, height: encIn.height, width: encIn.width };
    const d = train.dims;
    if ((want.height && want.height !== d.height) || (want.width && want.width !== d.width) || (want.frames && want.frames !== d.frames)) {
      throw new InputError('--toy-videos', `toy videos are ${d.frames} frames of ${d.width}×${d.height}; the encoder takes ${want.frames} of ${want.width}×${want.height}`);
    }
  } else {
    if (!o.videos) throw new InputError('--videos', 'give a folder of videos (or --toy-videos N)');
    const all = await readVideos(o.videos, { frames: encIn.frames, height: encIn.height, width: encIn.width });
    const nh = Math.max(1, Math.round(all.frames.length * sc.heldout_fraction));
    if (all.frames.length - nh < 1) throw new InputError('--videos', `${all.frames.length} video(s): too few to hold ${nh} out`);
    const cut = all.frames.length - nh;
    train = { ...all, names: all.names.slice(0, cut), frames: all.frames.slice(0, cut) };
    heldout = { ...all, names: all.names.slice(cut), frames: all.frames.slice(cut) };
  }
  const videos = [...train.frames, ...heldout.frames];
  const nTrain = train.frames.length;
  const F = train.dims.frames;
  const positions = latentFramePositions(F, t);
  progress(`stitch: ${nTrain} training + ${heldout.frames.length} held-out videos of ${F} frames, ${train.dims.width}×${train.dims.height}`);

  // E(x): latents [C, F', H, W] per video.
  const videoShape = [F, 3, train.dims.height, train.dims.width];
  const encOut = enc.graph?.output?.[0]?.name ?? '';
  const es = await ModelSession.open(encPath, rt);
  const latents = (await runBatched(es, encIn.name, videos, videoShape, [encOut], sc.batch)).get(encOut)!;
  await es.release();
  if (latents.shape.length !== 4) {
    throw new InputError('--encoder', `output '${encOut}' is [B, ${latents.shape}]; expected latents [B, C, F', H, W]`);
  }
  const [C, Fp] = latents.shape as [number, number];
  if (Fp !== positions.length) {
    throw new InputError('--encoder', `gives ${Fp} latent frames for ${F} frames; vae.temporal_compression ${t} means ${positions.length}`);
  }
  const lm = cfg.vae.latents_mean;
  if (lm && lm.length !== C) throw new InputError('--encoder', `gives ${C} latent channels; vae.latents_mean has ${lm.length}`);
  if (phiIn.frames !== undefined && phiIn.frames !== Fp) {
    throw new InputError('--geometry-model', `takes ${phiIn.frames} frames; the latents have ${Fp} latent frames`);
  }

  // The stitch point: candidates, or the one asked for.
  const candidates = o.at === 'auto' ? stitchCandidates(phi) : [o.at];
  if (o.at === 'auto' && !candidates.length) {
    throw new InputError('--at auto', `Φ has no tensors named tokenizer.output or blocks.N.output; name one: ${candidateList(phi)}`);
  }
  if (o.at !== 'auto' && !tensorNames(phi).includes(o.at)) {
    const named = stitchCandidates(phi);
    throw new InputError('--at', `'${o.at}' is not a tensor of Φ (${phiPath}); candidates: ${named.length ? named.join(', ') : candidateList(phi)}`);
  }
  // Φ on the frames at the latent-frame positions: candidates' values and its outputs.
  const outNames = [...roles.values()];
  const ps = await ModelSession.open(encodeModel(withOutputs(phi, candidates)), rt, phiPath);
  const phiFrames = videos.map((v) => framesAt(v, F, positions));
  const phiVals = await runBatched(ps, phiIn.name, phiFrames, [Fp, 3, train.dims.height, train.dims.width], [...candidates, ...outNames], sc.batch);
  await ps.release();

  const fingerprint = hashString(
    JSON.stringify({ stitch: sc, at: o.at, connector: spec, seed: o.seed ?? 0, n: videos.length, phi: phiPath, enc: encPath }),
  ).toString(16);
  const ckptPath = join(o.out, 'checkpoint.safetensors');
  let ckpt: Checkpoint | undefined;
  if (o.resume) {
    if (!existsSync(ckptPath)) throw new InputError('--resume', `${ckptPath} does not exist`);
    ckpt = loadCheckpoint(ckptPath);
    if (ckpt.fingerprint !== fingerprint) {
      throw new InputError('--resume', `${ckptPath} was made with other settings (config stitch.*, --at, --connector, models or videos)`);
    }
  } else if (existsSync(ckptPath)) {
    throw new InputError('--out', `${o.out} already holds a stitch checkpoint: continue it with --resume or choose another folder`);
  }

  let at: string;
  let cands: CandidateError[];
  let maps: Map<string, Float64Array>;
  if (ckpt) {
    at = ckpt.at;
    cands = ckpt.candidates;
    maps = new Map();
  } else {
    const scored = scoreCandidates(candidates, phiVals, latents, nTrain, spec, sc.ridge);
    cands = scored.errors;
    maps = scored.maps;
    const fitting = cands.filter((c) => c.heldout_relative_mse !== null);
    if (!fitting.length) throw new InputError('--encoder', `its latents do not fit the connector at ${candidates.join(', ')}: ${cands[0]!.note}`);
    at = fitting.reduce((a, b) => (b.heldout_relative_mse! < a.heldout_relative_mse! ? b : a)).tensor;
  }
  for (const c of cands) {
    progress(`stitch: ${c.tensor}: held-out relative MSE of the linear map ${c.heldout_relative_mse === null ? `— (${c.note})` : c.heldout_relative_mse.toFixed(4)}`);
  }
  progress(`stitch: stitch point ${at}`);
  const fit = fitOf(phiVals.get(at)!.shape, latents.shape, spec) as { layout: StitchLayout; width: number; grid: TokenGrid };
  const base = { at, spec, latent: latents.shape, width: fit.width, layout: fit.layout, latentsInput: cfg.lgm_outputs.latents_input, seed: o.seed ?? 0 };
  const settings = (p: { steps: number; lr: number; weight_decay: number }): PhaseSettings => ({
    steps: p.steps,
    lr: p.lr,
    weightDecay: p.weight_decay,
    batch: sc.batch,
    gradClip: sc.grad_clip,
    seed: o.seed ?? 0,
    checkpointEvery: sc.checkpoint_every,
    threads: rt.threads,
    device: rt.device,
  });
  const trainOf = (v: Values) => v.data.slice(0, nTrain);
  const save = (phase: 1 | 2, state: PhaseState, phase1?: { values: ParamMap; curve: number[] }) => {
    saveCheckpoint(ckptPath, { fingerprint, at, candidates: cands, phase, state, phase1 });
    progress(`stitch: checkpoint phase ${phase} step ${state.step} → ${ckptPath}`);
  };

  // Phase 1: the connector, initialised at the chosen point's ridge map.
  let p1: { values: ParamMap; curve: number[] };
  if (ckpt?.phase === 2 && ckpt.phase1) p1 = ckpt.phase1;
  else {
    const init = new Map<string, Float32Array>();
    const M = maps.get(at);
    const fromMap = M && connectorFromPatchMap(M, C, fit.width, spec);
    if (fromMap) {
      init.set('connector.weight', fromMap.weight);
      init.set('connector.bias', fromMap.bias);
    }
    const conn = buildConnectorModel({ ...base, trainBatch: sc.batch, weights: init });
    const term: LossTerm = { output: at, shape: phiVals.get(at)!.shape, weight: 1, targets: trainOf(phiVals.get(at)!) };
    const s1 = await runPhase({
      phase: 1,
      model: conn.model,
      params: conn.params,
      input: base.latentsInput,
      inputShape: latents.shape,
      inputs: trainOf(latents),
      terms: [term],
      settings: settings(sc.phase1),
      resume: ckpt?.phase === 1 ? ckpt.state : undefined,
      checkpoint: (s) => save(1, s),
      progress,
      signal: o.signal,
    });
    p1 = { values: s1.values, curve: s1.curve };
  }
  const connFwd = buildConnectorModel({ ...base, weights: p1.values });
  const p1Err = (await heldoutErrors(connFwd.model, base.latentsInput, latents, nTrain, phiVals, [at], rt, sc.batch))[at]!;
  progress(`stitch: phase 1 held-out relative MSE at ${at}: ${p1Err.toFixed(4)}`);

  // Phase 2: connector + Φ_{ℓ+1:L} to Φ's outputs.
  const afterP1 = buildStitchedLgm({ ...base, phi, weights: p1.values });
  const err1 = await heldoutErrors(afterP1.model, base.latentsInput, latents, nTrain, phiVals, outNames, rt, sc.batch);
  const train2 = buildStitchedLgm({ ...base, phi, weights: p1.values, trainBatch: sc.batch });
  const terms: LossTerm[] = [...roles].map(([role, name]) => ({
    output: name,
    shape: phiVals.get(name)!.shape,
    weight: sc.phase2.weights[role] ?? 1,
    targets: trainOf(phiVals.get(name)!),
  }));
  const s2 = await runPhase({
    phase: 2,
    model: train2.model,
    params: train2.params,
    input: base.latentsInput,
    inputShape: latents.shape,
    inputs: trainOf(latents),
    terms: terms.filter((x) => x.weight > 0),
    settings: settings(sc.phase2),
    resume: ckpt?.phase === 2 ? ckpt.state : undefined,
    checkpoint: (s) => save(2, s, p1),
    progress,
    signal: o.signal,
  });
  const lgm = buildStitchedLgm({ ...base, phi, weights: s2.values });
  const err2 = await heldoutErrors(lgm.model, base.latentsInput, latents, nTrain, phiVals, outNames, rt, sc.batch);

  // The run folder.
  const written: string[] = [];
  const lgmPath = join(o.out, 'lgm.onnx');
  saveModel(lgm.model, lgmPath);
  written.push(lgmPath);
  const go = cfg.geometry_outputs;
  const lgmConfig = join(o.out, 'lgm-config.yaml');
  const { frames_input: _f, ...fields } = go;
  atomicWrite(
    lgmConfig,
    `# The stitched LGM (vggrpo stitch, at ${at}); pass with --config or merge into an experiment config.\n${stringify({
      models: { lgm: 'lgm.onnx' },
      lgm_outputs: { ...fields, latents_input: base.latentsInput },
    })}`,
  );
  written.push(lgmConfig);
  const curves = join(o.out, 'curves.csv');
  atomicWrite(
    curves,
    `phase,step,loss\n${[...p1.curve.map((l, i) => `1,${i + 1},${l}`), ...s2.curve.map((l, i) => `2,${i + 1},${l}`)].join('\n')}\n`,
  );
  written.push(curves);
  const svg = join(o.out, 'curves.svg');
  atomicWrite(
    svg,
    await renderSvg(
      lineSpec({
        title: `stitch at ${at}: training loss (relative MSE)`,
        xTitle: 'step',
        yTitle: 'loss',
        series: [
          { name: 'phase 1 (connector)', y: p1.curve },
          { name: 'phase 2 (connector + later layers)', y: s2.curve },
        ],
      }),
    ),
  );
  written.push(svg);
  const result: StitchResult = {
    out: o.out,
    lgm: lgmPath,
    lgm_config: lgmConfig,
    at,
    candidates: cands,
    phase1: { steps: p1.curve.length, final_loss: p1.curve.at(-1) ?? null, heldout_relative_mse: p1Err },
    phase2: {
      steps: s2.curve.length,
      final_loss: s2.curve.at(-1) ?? null,
      heldout_relative_mse: Object.fromEntries(outNames.map((n) => [n, { after_phase1: err1[n]!, after_phase2: err2[n]! }])),
    },
    videos: { train: nTrain, heldout: heldout.frames.length },
    seconds: (Date.now() - t0) / 1000,
    written: [],
  };
  const summary = join(o.out, 'stitch.json');
  written.push(summary);
  written.push(ckptPath);
  result.written = written;
  atomicWrite(summary, `${JSON.stringify(result, null, 2)}\n`);
  for (const n of outNames) progress(`stitch: ${n}: held-out relative MSE vs Φ ${err1[n]!.toFixed(4)} → ${err2[n]!.toFixed(4)}`);
  for (const p of written) emit(p);
  return result;
}
