/**
 * Camera conventions shared by the geometry model's outputs, the rewards and the toy world.
 *
 * - extrinsics: camera-from-world [R|t], 3×4 row-major, OpenCV axes (x right, y down, z forward);
 *   X_cam = R·X_world + t, camera centre c = −Rᵀt.
 * - intrinsics: 3×3 row-major K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels of the h×w
 *   output; pixel (row i, column j) sits at (u = j, v = i), principal point (W/2, H/2) (VGGT).
 * - VGGT pose encoding (9 numbers per frame): t(3), quaternion (x, y, z, w), fov_h, fov_w;
 *   fy = (H/2)/tan(fov_h/2), fx = (W/2)/tan(fov_w/2).
 * - camera-to-world: 4×4 row-major [Rᵀ | c; 0 0 0 1] (Any4D, Pi3, CUT3R).
 *
 * Batched arrays are flat, frame-major: extrinsics [F,3,4], intrinsics [F,3,3], poses [F,9].
 */
import { InputError } from '../errors.js';
import { matrixToQuat, quatToMatrix } from './so3.js';

/** Cameras of one video in the geometry-shard layout. */
export interface Cameras {
  /** [F,3,4] camera-from-world. */
  extrinsics: Float32Array;
  /** [F,3,3] pixel intrinsics. */
  intrinsics: Float32Array;
}

function checkLength(arr: ArrayLike<number>, per: number, where: string): number {
  if (arr.length % per !== 0 || arr.length === 0) {
    throw new InputError(where, `expected a multiple of ${per} numbers, got ${arr.length}`);
  }
  return arr.length / per;
}

/**
 * Intrinsics K (row-major 3×3) from vertical and horizontal fields of view (radians) and the
 * image size, principal point at the centre.
 *
 * @example
 *   intrinsicsFromFov(Math.PI / 2, Math.PI / 2, 64, 64); // fx = fy = 32, cx = cy = 32
 */
export function intrinsicsFromFov(
  fovH: number,
  fovW: number,
  height: number,
  width: number,
  out: Float32Array | Float64Array = new Float64Array(9),
): Float32Array | Float64Array {
  out.fill(0);
  out[0] = width / 2 / Math.tan(fovW / 2);
  out[2] = width / 2;
  out[4] = height / 2 / Math.tan(fovH / 2);
  out[5] = height / 2;
  out[8] = 1;
  return out;
}

/**
 * Intrinsics K from [fx, fy, cx, cy] (the config's `lgm_outputs.intrinsics`), repeated for F frames.
 *
 * @example
 *   intrinsicsFromParams([50, 50, 32, 32], 8); // Float32Array [8,3,3]
 */
export function intrinsicsFromParams(params: ArrayLike<number>, frames: number): Float32Array {
  if (params.length !== 4)
    throw new InputError('intrinsics', `expected [fx, fy, cx, cy], got ${params.length} numbers`);
  const out = new Float32Array(frames * 9);
  for (let f = 0; f < frames; f++) {
    out[9 * f] = params[0]!;
    out[9 * f + 2] = params[2]!;
    out[9 * f + 4] = params[1]!;
    out[9 * f + 5] = params[3]!;
    out[9 * f + 8] = 1;
  }
  return out;
}

/**
 * VGGT pose encoding [F,9] → camera-from-world extrinsics [F,3,4] and intrinsics [F,3,3] for an
 * H×W image. Quaternions are normalised before use; a zero quaternion is an input error.
 *
 * @example
 *   const { extrinsics, intrinsics } = poseEncodingToCameras(poseEnc, 60, 104);
 */
export function poseEncodingToCameras(pose: ArrayLike<number>, height: number, width: number): Cameras {
  const frames = checkLength(pose, 9, 'pose encoding');
  const extrinsics = new Float32Array(frames * 12);
  const intrinsics = new Float32Array(frames * 9);
  const r = new Float64Array(9);
  const q = new Float64Array(4);
  for (let f = 0; f < frames; f++) {
    const o = 9 * f;
    for (let k = 0; k < 4; k++) q[k] = pose[o + 3 + k]!;
    if (!(Math.hypot(q[0]!, q[1]!, q[2]!, q[3]!) > 0)) {
      throw new InputError('pose encoding', `frame ${f}: zero or non-finite quaternion`);
    }
    quatToMatrix(q, r);
    for (let row = 0; row < 3; row++) {
      for (let c = 0; c < 3; c++) extrinsics[12 * f + 4 * row + c] = r[3 * row + c]!;
      extrinsics[12 * f + 4 * row + 3] = pose[o + row]!;
    }
    intrinsicsFromFov(pose[o + 7]!, pose[o + 8]!, height, width, intrinsics.subarray(9 * f, 9 * f + 9));
  }
  return { extrinsics, intrinsics };
}

/**
 * Extrinsics [F,3,4] + intrinsics [F,3,3] → VGGT pose encoding [F,9] (quaternion with w ≥ 0).
 *
 * @example
 *   camerasToPoseEncoding(extrinsics, intrinsics, 60, 104); // Float32Array [F*9]
 */
export function camerasToPoseEncoding(
  extrinsics: ArrayLike<number>,
  intrinsics: ArrayLike<number>,
  height: number,
  width: number,
): Float32Array {
  const frames = checkLength(extrinsics, 12, 'extrinsics');
  if (intrinsics.length !== frames * 9) throw new InputError('intrinsics', `expected ${frames * 9} numbers`);
  const out = new Float32Array(frames * 9);
  const r = new Float64Array(9);
  const q = new Float64Array(4);
  for (let f = 0; f < frames; f++) {
    for (let row = 0; row < 3; row++) {
      for (let c = 0; c < 3; c++) r[3 * row + c] = extrinsics[12 * f + 4 * row + c]!;
      out[9 * f + row] = extrinsics[12 * f + 4 * row + 3]!;
    }
    matrixToQuat(r, q);
    for (let k = 0; k < 4; k++) out[9 * f + 3 + k] = q[k]!;
    const fx = intrinsics[9 * f]!;
    const fy = intrinsics[9 * f + 4]!;
    out[9 * f + 7] = 2 * Math.atan(height / 2 / fy);
    out[9 * f + 8] = 2 * Math.atan(width / 2 / fx);
  }
  return out;
}

/**
 * Camera-to-world 4×4 poses [F,4,4] → camera-from-world extrinsics [F,3,4]: R = Rc2wᵀ, t = −R·c.
 *
 * @example
 *   cameraToWorldToExtrinsics(c2w); // Float32Array [F*12]
 */
export function cameraToWorldToExtrinsics(c2w: ArrayLike<number>): Float32Array {
  const frames = checkLength(c2w, 16, 'camera-to-world poses');
  const out = new Float32Array(frames * 12);
  for (let f = 0; f < frames; f++) {
    const o = 16 * f;
    for (let row = 0; row < 3; row++) {
      let t = 0;
      for (let c = 0; c < 3; c++) {
        const rrc = c2w[o + 4 * c + row]!; // R[row][c] = Rc2w[c][row]
        out[12 * f + 4 * row + c] = rrc;
        t -= rrc * c2w[o + 4 * c + 3]!;
      }
      out[12 * f + 4 * row + 3] = t;
    }
  }
  return out;
}

/**
 * Camera-from-world extrinsics [F,3,4] → camera-to-world 4×4 poses [F,4,4].
 *
 * @example
 *   extrinsicsToCameraToWorld(extrinsics); // Float32Array [F*16]
 */
export function extrinsicsToCameraToWorld(extrinsics: ArrayLike<number>): Float32Array {
  const frames = checkLength(extrinsics, 12, 'extrinsics');
  const out = new Float32Array(frames * 16);
  const c = new Float64Array(3);
  for (let f = 0; f < frames; f++) {
    cameraCentre(extrinsics, f, c);
    for (let row = 0; row < 3; row++) {
      for (let col = 0; col < 3; col++) out[16 * f + 4 * row + col] = extrinsics[12 * f + 4 * col + row]!;
      out[16 * f + 4 * row + 3] = c[row]!;
    }
    out[16 * f + 15] = 1;
  }
  return out;
}

/**
 * Centre c = −Rᵀt of frame f's camera (float64).
 *
 * @example
 *   cameraCentre(extrinsics, 0); // Float64Array [3]
 */
export function cameraCentre(
  extrinsics: ArrayLike<number>,
  frame: number,
  out: Float64Array = new Float64Array(3),
): Float64Array {
  const o = 12 * frame;
  const t0 = extrinsics[o + 3]!;
  const t1 = extrinsics[o + 7]!;
  const t2 = extrinsics[o + 11]!;
  for (let c = 0; c < 3; c++) {
    out[c] = -(extrinsics[o + c]! * t0 + extrinsics[o + 4 + c]! * t1 + extrinsics[o + 8 + c]! * t2);
  }
  return out;
}

/**
 * Centres c_i = −R_iᵀt_i of every frame of extrinsics [F,3,4], as [F,3] (float64).
 *
 * @example
 *   cameraCentres(geometry.extrinsics); // Float64Array [3F]
 */
export function cameraCentres(extrinsics: ArrayLike<number>): Float64Array {
  const frames = checkLength(extrinsics, 12, 'extrinsics');
  const out = new Float64Array(3 * frames);
  for (let f = 0; f < frames; f++) cameraCentre(extrinsics, f, out.subarray(3 * f, 3 * f + 3));
  return out;
}

/** Rotation R (camera-from-world, row-major 3×3, float64) of frame f. */
export function cameraRotation(
  extrinsics: ArrayLike<number>,
  frame: number,
  out: Float64Array = new Float64Array(9),
): Float64Array {
  const o = 12 * frame;
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) out[3 * r + c] = extrinsics[o + 4 * r + c]!;
  return out;
}

/**
 * Camera-from-world extrinsics [3,4] of a camera at `eye` looking at `target`, with world
 * `up` mapped to camera −y (OpenCV: y points down in the image).
 *
 * @example
 *   lookAt([0, 1.5, 3], [0, 0.5, 0]); // Float64Array [12]
 */
export function lookAt(
  eye: ArrayLike<number>,
  target: ArrayLike<number>,
  up: ArrayLike<number> = [0, 1, 0],
): Float64Array {
  let fx = target[0]! - eye[0]!;
  let fy = target[1]! - eye[1]!;
  let fz = target[2]! - eye[2]!;
  const fn = Math.hypot(fx, fy, fz);
  fx /= fn;
  fy /= fn;
  fz /= fn;
  // x = forward × up points right when y is down.
  let rx = fy * up[2]! - fz * up[1]!;
  let ry = fz * up[0]! - fx * up[2]!;
  let rz = fx * up[1]! - fy * up[0]!;
  const rn = Math.hypot(rx, ry, rz);
  if (!(rn > 1e-9)) throw new RangeError('lookAt: forward parallel to up');
  rx /= rn;
  ry /= rn;
  rz /= rn;
  // y (down) = forward × right.
  const dx = fy * rz - fz * ry;
  const dy = fz * rx - fx * rz;
  const dz = fx * ry - fy * rx;
  const r = [rx, ry, rz, dx, dy, dz, fx, fy, fz];
  const out = new Float64Array(12);
  for (let row = 0; row < 3; row++) {
    let t = 0;
    for (let c = 0; c < 3; c++) {
      out[4 * row + c] = r[3 * row + c]!;
      t -= r[3 * row + c]! * eye[c]!;
    }
    out[4 * row + 3] = t;
  }
  return out;
}
