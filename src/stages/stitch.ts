/**
 * Stage `stitch`: build a latent geometry model LGM = Φ_{ℓ+1:L} ∘ C from an RGB geometry model Φ
 * and a VAE encoder E (onnx/README.md 3.6): encode the videos, run Φ on the frames at the
 * latent-frame positions, choose ℓ (`--at auto`: ridge maps scored on held-out videos), fit C
 * (phase 1), fine-tune C and Φ_{ℓ+1:L} (phase 2), and write the run folder: lgm.onnx,
 * lgm-config.yaml (the `models.lgm` and `lgm_outputs` for it), checkpoint.safetensors,
 * curves.csv + curves.svg and stitch.json.
 *
 * @example
 *   const r = await runStitch({ geometryModel: 'phi.onnx', encoder: 'enc.onnx', toyVideos: 32, at: 'auto', out: 'runs/stitch', config }, log, emit);
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import type { Config } from '../config/schema.js';
import { InputError } from '../errors.js';
import { lineSpec, renderSvg } from '../media/plots.js';
import { VaeEncoder } from '../media/vae.js';
import { candidateList, tensorNames } from '../onnx/cut.js';
import { encodeModel, loadModel, saveModel } from '../onnx/model.js';
import type { ModelProto } from '../onnx/proto.js';
import type { ParamMap } from '../rl/adamw.js';
import { runtimeOptions } from '../rl/policy.js';
import { hashString } from '../rl/prng.js';
import { ModelSession, type RuntimeOptions } from '../runtime/session.js';
import { atomicWrite } from '../shards/atomic.js';
import {
  type CandidateError,
  type Checkpoint,
  loadCheckpoint,
  saveCheckpoint,
} from '../stitch/checkpoint.js';
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
import { framesAt, latentFramePositions, runBatched, type Values, withOutputs } from '../stitch/targets.js';
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

export type { CandidateError };

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
  // The LGM contract needs these four; the LGM has exactly Φ's outputs.
  const missing = roles.slice(0, 4).filter(([role]) => !out.has(role));
  if (missing.length) {
    const list = missing.map(([role, name]) => `'${name}' (geometry_outputs.${role})`).join(', ');
    throw new InputError('--geometry-model', `has no output ${list}; its outputs: ${[...have].join(', ')}`);
  }
  return out;
}

/** A model path that exists, or an InputError naming the flag. */
function modelPath(path: string | null | undefined, flag: string, key: string): string {
  if (!path) throw new InputError(flag, `no model given (flag or config ${key})`);
  if (!existsSync(path)) throw new InputError(flag, `${path}: model file not found`);
  return path;
}

/** Static frame count and size of a frames input (undefined where dynamic). */
interface FrameInput {
  name: string;
  frames?: number;
  height?: number;
  width?: number;
}

/** Where F, H and W sit in a frames input of each layout (Φ's is BF3HW; the encoder's is `vae.layout`). */
const FHW_AXES: Record<Config['vae']['layout'], [number, number, number]> = {
  BF3HW: [1, 3, 4],
  B3FHW: [2, 3, 4],
  BFHW3: [1, 2, 3],
};

function frameDims(model: ModelProto, flag: string, layout: Config['vae']['layout'] = 'BF3HW'): FrameInput {
  const v = model.graph?.input?.find((i) => !(model.graph?.initializer ?? []).some((t) => t.name === i.name));
  const dims = v?.type?.tensorType?.shape?.dim ?? [];
  if (!v || dims.length !== 5) throw new InputError(flag, `expected one input frames (${layout})`);
  const d = (i: number) =>
    dims[i]?.dimValue !== undefined && dims[i]!.dimValue! > 0 ? dims[i]!.dimValue : undefined;
  const [f, h, w] = FHW_AXES[layout];
  return { name: v.name ?? '', frames: d(f), height: d(h), width: d(w) };
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
      ridge.add(
        patchFeatures(latents.data[k]!, latents.shape, fit.grid),
        tokenRows(v.data[k]!, N, fit.width, fit.layout),
        N,
      );
    }
    const M = ridge.solve(lambda);
    // One mean over all features, as the phases' losses and held-out errors use (MSE / variance).
    const perFeature = ridge.mean();
    const rel = new RelativeError(Float64Array.of(perFeature.reduce((a, m) => a + m, 0) / perFeature.length));
    for (let k = nTrain; k < v.data.length; k++) {
      const X = patchFeatures(latents.data[k]!, latents.shape, fit.grid);
      rel.add(applyMap(X, M, N, P1, fit.width), tokenRows(v.data[k]!, N, fit.width, fit.layout));
    }
    maps.set(name, M);
    errors.push({ tensor: name, heldout_relative_mse: rel.value() });
  }
  return { errors, maps };
}

/** Held-out relative MSE of a model's outputs against targets, per output. */
async function heldoutErrors(
  model: ModelProto,
  input: string,
  latents: Values,
  from: number,
  targets: Map<string, Values>,
  names: string[],
  rt: Partial<RuntimeOptions>,
  batch: number,
): Promise<Record<string, number>> {
  const s = await ModelSession.open(encodeModel(model), rt, 'stitched model');
  const out = await runBatched(s, input, latents.data.slice(from), latents.shape, names, batch);
  await s.release();
  const res: Record<string, number> = {};
  for (const n of names) {
    const t = targets.get(n)!;
    // The baseline is the training mean, as in the losses (MSE over the training variance).
    let sum = 0;
    let cnt = 0;
    for (const x of t.data.slice(0, from)) {
      for (const v of x) sum += v;
      cnt += x.length;
    }
    const rel = new RelativeError(Float64Array.of(sum / Math.max(1, cnt)));
    out.get(n)!.data.forEach((p, k) => {
      rel.add(p, t.data[from + k]!);
    });
    res[n] = rel.value();
  }
  return res;
}

/** `--encoder shards`: take the latents stored with the frames instead of running an encoder. */
export const PAIRED = 'shards';

/** Φ, the encoder and what they take, checked before any work. */
interface StitchModels {
  phi: ModelProto;
  phiPath: string;
  encPath: string;
  phiIn: FrameInput;
  encIn: FrameInput;
  roles: Map<string, string>;
  candidates: string[];
}

function openModels(o: StitchOptions): StitchModels {
  const cfg = o.config;
  const phiPath = modelPath(o.geometryModel ?? cfg.models.geometry, '--geometry-model', 'models.geometry');
  const encoder = o.encoder ?? cfg.models.vae_encoder;
  // `shards`: the latents paired with the frames in the --videos shards (`final_latents`), no encoder run.
  const encPath = encoder === PAIRED ? PAIRED : modelPath(encoder, '--encoder', 'models.vae_encoder');
  const phi = loadModel(phiPath);
  const enc = encPath === PAIRED ? undefined : loadModel(encPath);
  const candidates = o.at === 'auto' ? stitchCandidates(phi) : [o.at];
  if (o.at === 'auto' && !candidates.length) {
    throw new InputError(
      '--at auto',
      `Φ has no tensors named tokenizer.output or blocks.N.output; name one: ${candidateList(phi)}`,
    );
  }
  if (o.at !== 'auto' && !tensorNames(phi).includes(o.at)) {
    const named = stitchCandidates(phi);
    throw new InputError(
      '--at',
      `'${o.at}' is not a tensor of Φ (${phiPath}); candidates: ${named.length ? named.join(', ') : candidateList(phi)}`,
    );
  }
  return {
    phi,
    phiPath,
    encPath,
    phiIn: frameDims(phi, '--geometry-model'),
    encIn: enc ? frameDims(enc, '--encoder', cfg.vae.layout) : { name: '' },
    roles: phiOutputs(cfg, phi),
    candidates,
  };
}

/** The videos, split into training and held-out. */
async function stitchVideos(
  o: StitchOptions,
  encIn: FrameInput,
): Promise<{ train: Videos; heldout: Videos }> {
  const frac = o.config.stitch.heldout_fraction;
  const want = { frames: encIn.frames, height: encIn.height, width: encIn.width };
  if (o.toyVideos !== undefined) {
    const nh = Math.max(1, Math.round((o.toyVideos * frac) / (1 - frac)));
    const v = toyVideos(o.toyVideos, nh, o.seed ?? 0);
    const d = v.train.dims;
    if (
      (want.height ?? d.height) !== d.height ||
      (want.width ?? d.width) !== d.width ||
      (want.frames ?? d.frames) !== d.frames
    ) {
      throw new InputError(
        '--toy-videos',
        `toy videos are ${d.frames} frames of ${d.width}×${d.height}; the encoder takes ${want.frames} of ${want.width}×${want.height}`,
      );
    }
    return v;
  }
  if (!o.videos) throw new InputError('--videos', 'give a folder of videos (or --toy-videos N)');
  const all = await readVideos(o.videos, want);
  const nh = Math.max(1, Math.round(all.frames.length * frac));
  const cut = all.frames.length - nh;
  if (cut < 1) throw new InputError('--videos', `${all.frames.length} video(s): too few to hold ${nh} out`);
  const part = (a: number, b?: number): Videos => ({
    ...all,
    names: all.names.slice(a, b),
    frames: all.frames.slice(a, b),
    latents: all.latents && { shape: all.latents.shape, data: all.latents.data.slice(a, b) },
  });
  return { train: part(0, cut), heldout: part(cut) };
}

/** E(x) per video, and Φ on the frames at the latent-frame positions (candidates' tensors and outputs). */
async function encodeAndProbe(
  o: StitchOptions,
  m: StitchModels,
  videos: Float32Array[],
  dims: Videos['dims'],
  paired?: Values,
): Promise<{ latents: Values; phiVals: Map<string, Values> }> {
  const cfg = o.config;
  const rt = runtimeOptions(cfg);
  const t = cfg.vae.temporal_compression;
  const F = dims.frames;
  const positions = latentFramePositions(F, t);
  let latents: Values;
  if (m.encPath === PAIRED) {
    if (!paired) {
      throw new InputError(
        '--encoder shards',
        "the --videos are not shards that all hold 'final_latents' [B, C, F', H, W] (F32)",
      );
    }
    latents = paired;
  } else {
    latents = await encodeVideos(cfg, m.encPath, videos, [F, dims.height, dims.width]);
  }
  if (latents.shape.length !== 4) {
    throw new InputError('--encoder', `latents are [B, ${latents.shape}]; expected [B, C, F', H, W]`);
  }
  const [C, Fp] = latents.shape as [number, number];
  if (Fp !== positions.length) {
    throw new InputError(
      '--encoder',
      `gives ${Fp} latent frames for ${F} frames; vae.temporal_compression ${t} means ${positions.length}`,
    );
  }
  const lm = cfg.vae.latents_mean;
  if (lm && lm.length !== C)
    throw new InputError('--encoder', `gives ${C} latent channels; vae.latents_mean has ${lm.length}`);
  if (m.phiIn.frames !== undefined && m.phiIn.frames !== Fp) {
    throw new InputError(
      '--geometry-model',
      `takes ${m.phiIn.frames} frames; the latents have ${Fp} latent frames`,
    );
  }
  const ps = await ModelSession.open(encodeModel(withOutputs(m.phi, m.candidates)), rt, m.phiPath);
  const phiVals = await runBatched(
    ps,
    m.phiIn.name,
    videos.map((v) => framesAt(v, F, positions)),
    [Fp, 3, dims.height, dims.width],
    [...m.candidates, ...m.roles.values()],
    cfg.stitch.batch,
  );
  await ps.release();
  return { latents, phiVals };
}

/**
 * E(x) of each video [F, 3, H, W] through the one VAE adapter (src/media/vae.ts), so the
 * latents the connector learns from follow `vae.*` exactly as the denoiser's do: frames in the
 * encoder's layout and pixel range, latents normalised by `vae.latents_mean/std`.
 */
async function encodeVideos(
  cfg: Config,
  path: string,
  videos: Float32Array[],
  [F, H, W]: [number, number, number],
): Promise<Values> {
  const enc = await VaeEncoder.open(cfg, path);
  const out: Values = { shape: [], data: [] };
  const per = F * 3 * H * W;
  try {
    for (let s = 0; s < videos.length; s += cfg.stitch.batch) {
      const part = videos.slice(s, s + cfg.stitch.batch);
      const x = new Float32Array(part.length * per);
      part.forEach((v, k) => {
        x.set(v, k * per);
      });
      const z = await enc.encode(x, [part.length, F, H, W]);
      out.shape = z.shape.slice(1);
      const size = z.latents.length / part.length;
      for (let k = 0; k < part.length; k++) out.data.push(z.latents.slice(k * size, (k + 1) * size));
    }
  } finally {
    await enc.release();
  }
  return out;
}

/** The checkpoint to continue from (`--resume`), or none; refuses to overwrite one without it. */
function priorCheckpoint(o: StitchOptions, path: string, fingerprint: string): Checkpoint | undefined {
  if (!o.resume) {
    if (existsSync(path)) {
      throw new InputError(
        '--out',
        `${o.out} already holds a stitch checkpoint: continue it with --resume or choose another folder`,
      );
    }
    return undefined;
  }
  if (!existsSync(path)) throw new InputError('--resume', `${path} does not exist`);
  const c = loadCheckpoint(path);
  if (c.fingerprint !== fingerprint) {
    throw new InputError(
      '--resume',
      `${path} was made with other settings (config stitch.*, vae.*, --at, --connector, models or videos)`,
    );
  }
  return c;
}

/** A fingerprint of everything a resumed run must share with the one that wrote the checkpoint. */
function settingsFingerprint(o: StitchOptions, m: StitchModels, spec: ConnectorSpec, videos: number): string {
  const stamp = (p: string) => `${resolve(p)}:${statSync(p).size}:${statSync(p).mtimeMs}`;
  const c = o.config;
  return hashString(
    JSON.stringify({
      stitch: c.stitch,
      vae: c.vae,
      at: o.at,
      spec,
      seed: o.seed ?? 0,
      videos,
      phi: stamp(m.phiPath),
      enc: m.encPath === PAIRED ? PAIRED : stamp(m.encPath),
    }),
  ).toString(16);
}

/** The run folder's files besides the checkpoint; returns their paths. */
async function writeRunFolder(
  o: StitchOptions,
  lgm: ModelProto,
  at: string,
  roles: Map<string, string>,
  curves: { phase1: number[]; phase2: number[] },
): Promise<string[]> {
  const lgmPath = join(o.out, 'lgm.onnx');
  saveModel(lgm, lgmPath);
  const { frames_input: _f, ...fields } = o.config.geometry_outputs;
  // Optional outputs Φ lacks are absent from the LGM too.
  for (const role of ['scene_flow', 'intrinsics_output', 'dynamic_mask'] as const)
    if (!roles.has(role)) fields[role] = null;
  const lgmConfig = join(o.out, 'lgm-config.yaml');
  atomicWrite(
    lgmConfig,
    `# The stitched LGM (vggrpo stitch at ${at}); pass with --config or merge into an experiment config.\n${stringify(
      {
        models: { lgm: 'lgm.onnx' },
        lgm_outputs: { ...fields, latents_input: o.config.lgm_outputs.latents_input },
      },
    )}`,
  );
  const csv = join(o.out, 'curves.csv');
  const rows = [
    ...curves.phase1.map((l, i) => `1,${i + 1},${l}`),
    ...curves.phase2.map((l, i) => `2,${i + 1},${l}`),
  ];
  atomicWrite(csv, `phase,step,loss\n${rows.join('\n')}\n`);
  const svg = join(o.out, 'curves.svg');
  const spec = lineSpec({
    title: `stitch at ${at}: training loss (relative MSE)`,
    xTitle: 'step',
    yTitle: 'loss',
    series: [
      { name: 'phase 1 (connector)', y: curves.phase1 },
      { name: 'phase 2 (connector + later layers)', y: curves.phase2 },
    ],
  });
  atomicWrite(svg, await renderSvg(spec));
  return [lgmPath, lgmConfig, csv, svg];
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
  const sc = o.config.stitch;
  const rt = runtimeOptions(o.config);
  const spec = parseConnector(o.connector);
  const m = openModels(o);
  const { train, heldout } = await stitchVideos(o, m.encIn);
  const videos = [...train.frames, ...heldout.frames];
  const nTrain = train.frames.length;
  const ckptPath = join(o.out, 'checkpoint.safetensors');
  const fingerprint = settingsFingerprint(o, m, spec, videos.length);
  const ckpt = priorCheckpoint(o, ckptPath, fingerprint);
  const d = train.dims;
  progress(
    `stitch: ${nTrain} training + ${heldout.frames.length} held-out videos of ${d.frames} frames, ${d.width}×${d.height}`,
  );
  const paired = train.latents &&
    heldout.latents && { shape: train.latents.shape, data: [...train.latents.data, ...heldout.latents.data] };
  const { latents, phiVals } = await encodeAndProbe(o, m, videos, d, paired);

  // The stitch point: the one asked for, or the candidate whose linear map does best on held-out videos.
  const scored = ckpt
    ? { errors: ckpt.candidates, maps: new Map<string, Float64Array>() }
    : scoreCandidates(m.candidates, phiVals, latents, nTrain, spec, sc.ridge);
  const cands = scored.errors;
  for (const c of cands) {
    const e = c.heldout_relative_mse === null ? `— (${c.note})` : c.heldout_relative_mse.toFixed(4);
    progress(`stitch: ${c.tensor}: held-out relative MSE of the linear map ${e}`);
  }
  const fitting = cands.filter((c) => c.heldout_relative_mse !== null);
  if (!fitting.length) {
    throw new InputError(
      '--encoder',
      `its latents do not fit the connector at ${m.candidates.join(', ')}: ${cands[0]!.note}`,
    );
  }
  const at =
    ckpt?.at ?? fitting.reduce((a, b) => (b.heldout_relative_mse! < a.heldout_relative_mse! ? b : a)).tensor;
  progress(`stitch: stitch point ${at}`);
  const fit = fitOf(phiVals.get(at)!.shape, latents.shape, spec) as { layout: StitchLayout; width: number };
  const base = {
    at,
    spec,
    latent: latents.shape,
    width: fit.width,
    layout: fit.layout,
    latentsInput: o.config.lgm_outputs.latents_input,
    seed: o.seed ?? 0,
  };
  const settings = (p: { steps: number; lr: number; weight_decay: number }): PhaseSettings => ({
    steps: p.steps,
    lr: p.lr,
    weightDecay: p.weight_decay,
    batch: sc.batch,
    gradClip: sc.grad_clip,
    seed: o.seed ?? 0,
    checkpointEvery: sc.checkpoint_every,
    threads: o.config.runtime.threads,
    device: o.config.runtime.device,
  });
  const trainOf = (v: Values) => v.data.slice(0, nTrain);
  const save = (phase: 1 | 2, state: PhaseState, phase1?: { values: ParamMap; curve: number[] }) => {
    saveCheckpoint(ckptPath, { fingerprint, at, candidates: cands, phase, state, phase1 });
    progress(`stitch: checkpoint phase ${phase} step ${state.step} → ${ckptPath}`);
  };
  const common = {
    input: base.latentsInput,
    inputShape: latents.shape,
    inputs: trainOf(latents),
    progress,
    signal: o.signal,
  };
  const heldoutOf = (model: ModelProto, names: string[]) =>
    heldoutErrors(model, base.latentsInput, latents, nTrain, phiVals, names, rt, sc.batch);

  // Phase 1: the connector, initialised at the chosen point's ridge map (VIST3A's linear stitch).
  let p1: { values: ParamMap; curve: number[] };
  if (ckpt?.phase === 2 && ckpt.phase1) p1 = ckpt.phase1;
  else {
    const M = scored.maps.get(at);
    const fromMap = M && connectorFromPatchMap(M, latents.shape[0]!, fit.width, spec);
    const init = new Map(
      fromMap
        ? [
            ['connector.weight', fromMap.weight],
            ['connector.bias', fromMap.bias],
          ]
        : [],
    );
    const conn = buildConnectorModel({ ...base, trainBatch: sc.batch, weights: init });
    const target = phiVals.get(at)!;
    const s1 = await runPhase({
      ...common,
      phase: 1,
      model: conn.model,
      params: conn.params,
      terms: [{ output: at, shape: target.shape, weight: 1, targets: trainOf(target) }],
      settings: settings(sc.phase1),
      resume: ckpt?.phase === 1 ? ckpt.state : undefined,
      checkpoint: (s) => save(1, s),
    });
    p1 = { values: s1.values, curve: s1.curve };
  }
  const p1Err = (await heldoutOf(buildConnectorModel({ ...base, weights: p1.values }).model, [at]))[at]!;
  progress(`stitch: phase 1 held-out relative MSE at ${at}: ${p1Err.toFixed(4)}`);

  // Phase 2: the connector and Φ_{ℓ+1:L} fitted to Φ's outputs.
  const outNames = [...m.roles.values()];
  const err1 = await heldoutOf(buildStitchedLgm({ ...base, phi: m.phi, weights: p1.values }).model, outNames);
  const train2 = buildStitchedLgm({ ...base, phi: m.phi, weights: p1.values, trainBatch: sc.batch });
  const terms: LossTerm[] = [...m.roles].map(([role, name]) => ({
    output: name,
    shape: phiVals.get(name)!.shape,
    weight: sc.phase2.weights[role as keyof typeof sc.phase2.weights] ?? 1,
    targets: trainOf(phiVals.get(name)!),
  }));
  // The cameras' frame-to-frame steps, what the motion reward reads (stitch.phase2.weights.camera_steps).
  const cams = terms.find((x) => x.output === m.roles.get('cameras'));
  if (cams) terms.push({ ...cams, weight: sc.phase2.weights.camera_steps, frameSteps: true });
  const s2 = await runPhase({
    ...common,
    phase: 2,
    model: train2.model,
    params: train2.params,
    terms: terms.filter((x) => x.weight > 0),
    settings: settings(sc.phase2),
    resume: ckpt?.phase === 2 ? ckpt.state : undefined,
    checkpoint: (s) => save(2, s, p1),
  });
  const lgm = buildStitchedLgm({ ...base, phi: m.phi, weights: s2.values });
  const err2 = await heldoutOf(lgm.model, outNames);
  for (const n of outNames)
    progress(`stitch: ${n}: held-out relative MSE vs Φ ${err1[n]!.toFixed(4)} → ${err2[n]!.toFixed(4)}`);

  const files = await writeRunFolder(o, lgm.model, at, m.roles, { phase1: p1.curve, phase2: s2.curve });
  const summary = join(o.out, 'stitch.json');
  const result: StitchResult = {
    out: o.out,
    lgm: files[0]!,
    lgm_config: files[1]!,
    at,
    candidates: cands,
    phase1: { steps: p1.curve.length, final_loss: p1.curve.at(-1) ?? null, heldout_relative_mse: p1Err },
    phase2: {
      steps: s2.curve.length,
      final_loss: s2.curve.at(-1) ?? null,
      heldout_relative_mse: Object.fromEntries(
        outNames.map((n) => [n, { after_phase1: err1[n]!, after_phase2: err2[n]! }]),
      ),
    },
    videos: { train: nTrain, heldout: heldout.frames.length },
    seconds: (Date.now() - t0) / 1000,
    written: [...files, summary, ckptPath],
  };
  atomicWrite(summary, `${JSON.stringify(result, null, 2)}\n`);
  for (const p of result.written) emit(p);
  return result;
}
