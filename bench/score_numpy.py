"""Vectorised NumPy version of the two VGGRPO rewards (camera motion smoothness and geometry
reprojection consistency) with the defaults of src/rewards/*.ts, as the baseline for bench/score.ts.

Usage: score_numpy.py HEADER.json  — the header names raw little-endian float32 files and shapes:
{"frames", "height", "width", "repeats", "files": {"depth", "points", "confidence", "extrinsics",
"intrinsics", "scene_flow"?}}. Prints one JSON line: {"motion", "reprojection", "ms_per_video"}.
"""
import json
import sys
import time

import numpy as np


def camera_smoothness(ext, eps_t, eps_rot):
    R = ext[:, :, :3].astype(np.float64)
    t = ext[:, :, 3].astype(np.float64)
    c = -np.einsum("fji,fj->fi", R, t)
    # Relative rotation in camera i's axes: R_i R_{i+1}^T.
    rel = np.einsum("fij,fkj->fik", R[:-1], R[1:])
    v = 0.5 * np.stack([rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]], 1)
    s = np.linalg.norm(v, axis=1)
    cos = 0.5 * (np.trace(rel, axis1=1, axis2=2) - 1)
    theta = np.arctan2(s, cos)
    k = np.where(s > 1e-12, theta / np.maximum(s, 1e-300), 1.0)
    w = v * k[:, None]
    vel = c[1:] - c[:-1]
    acc = vel[1:] - vel[:-1]
    vn = np.linalg.norm(vel, axis=1)
    s_t = np.mean(np.linalg.norm(acc, axis=1) / (vn[1:] + vn[:-1] + eps_t))
    wn = np.linalg.norm(w, axis=1)
    s_r = np.mean(np.linalg.norm(w[1:] - w[:-1], axis=1) / (wn[1:] + wn[:-1] + eps_rot))
    return 0.5 * (1 / (1 + s_t) + 1 / (1 + s_r))


def splat_render(xyz, fp, E, K, h, w, scale, blend_tol=0.05, hole_tol=0.1, max_r=4.0):
    xc = xyz @ E[:, :3].T + E[:, 3]
    z = xc[:, 2]
    ok = z > 1e-6 * scale
    xc, z, fp = xc[ok], z[ok], fp[ok]
    u = (K[0, 0] * xc[:, 0] + K[0, 1] * xc[:, 1]) / z + K[0, 2]
    v = K[1, 1] * xc[:, 1] / z + K[1, 2]
    s = 0.5 * fp / z
    ru = np.clip(s * K[0, 0], 0.5, max_r)
    rv = np.clip(s * K[1, 1], 0.5, max_r)
    j0 = np.maximum(np.ceil(u - ru), 0)
    j1 = np.minimum(np.floor(u + ru), w - 1)
    i0 = np.maximum(np.ceil(v - rv), 0)
    i1 = np.minimum(np.floor(v + rv), h - 1)
    keep = (j0 <= j1) & (i0 <= i1)
    u, v, z, ru, rv, j0, j1, i0, i1 = (a[keep] for a in (u, v, z, ru, rv, j0, j1, i0, i1))
    R = int(np.ceil(max(ru.max(initial=0.5), rv.max(initial=0.5)))) + 1
    pix_l, z_l, w_l = [], [], []
    for di in range(-R, R + 1):
        ii = np.floor(v).astype(np.int64) + di
        mi = (ii >= i0) & (ii <= i1)
        for dj in range(-R, R + 1):
            jj = np.floor(u).astype(np.int64) + dj
            m = mi & (jj >= j0) & (jj <= j1)
            if not m.any():
                continue
            pix_l.append(ii[m] * w + jj[m])
            z_l.append(z[m])
            w_l.append((1 - np.abs(ii[m] - v[m]) / (rv[m] + 0.5)) * (1 - np.abs(jj[m] - u[m]) / (ru[m] + 0.5)))
    hw = h * w
    out = np.zeros(hw)
    if not pix_l:
        return out
    pix = np.concatenate(pix_l)
    zz = np.concatenate(z_l)
    ww = np.concatenate(w_l)
    # Nearest depth per pixel: sort by (pixel, depth) and take each pixel's first entry.
    order = np.lexsort((zz, pix))
    ps = pix[order]
    first = np.ones(len(ps), bool)
    first[1:] = ps[1:] != ps[:-1]
    zmin = np.full(hw, np.inf)
    zmin[ps[first]] = zz[order][first]
    inband = zz <= zmin[pix].astype(np.float32) * (1 + blend_tol)
    acc = np.bincount(pix[inband], weights=ww[inband] * zz[inband], minlength=hw)
    wsum = np.bincount(pix[inband], weights=ww[inband], minlength=hw)
    out = np.where(wsum > 0, acc / np.where(wsum > 0, wsum, 1), 0.0).astype(np.float32)
    # Support test on the interior.
    d = out.reshape(h, w)
    c = d[1:-1, 1:-1]
    lim = c * (1 - hole_tol)

    def pair(a, b):
        return (a > 0) & (b > 0) & (a < lim) & (b < lim)

    leak = (
        pair(d[1:-1, :-2], d[1:-1, 2:])
        | pair(d[:-2, 1:-1], d[2:, 1:-1])
        | pair(d[:-2, :-2], d[2:, 2:])
        | pair(d[:-2, 2:], d[2:, :-2])
    ) & (c > 0)
    res = d.copy()
    res[1:-1, 1:-1][leak] = 0
    return res.reshape(-1)


def reprojection(depth, points, conf, ext, intr, flow, tau=0.01, k_worst=3, min_cov=0.05, unc=1.0):
    F, h, w = depth.shape
    valid = np.isfinite(depth) & (depth > 0)
    scale = float(np.median(depth[valid].astype(np.float64)))
    usable = valid.copy()
    if flow is not None:
        usable &= (flow.astype(np.float64) ** 2).sum(-1) <= (tau * scale) ** 2
    usable &= np.isfinite(points).all(-1)
    # Footprint of each point: its depth in its own camera over the mean focal length.
    zs = np.einsum("fk,fhwk->fhw", ext[:, 2, :3], points) + ext[:, 2, 3][:, None, None]
    focal = np.sqrt(np.abs(intr[:, 0, 0] * intr[:, 1, 1]))
    fp = np.where(zs > 0, zs / focal[:, None, None], 0)
    errors = np.zeros(F)
    for i in range(F):
        m = usable.copy()
        m[i] = False
        dhat = splat_render(points[m], fp[m], ext[i].astype(np.float64), intr[i].astype(np.float64), h, w, scale)
        u = usable[i].reshape(-1)
        d = depth[i].reshape(-1)
        hit = u & (dhat > 0)
        nvalid = u.sum()
        if nvalid == 0 or hit.sum() / nvalid < min_cov:
            errors[i] = unc
            continue
        e = np.abs(dhat[hit] - d[hit]) / d[hit]
        wts = np.maximum(conf[i].reshape(-1)[hit], 0) if conf is not None else np.ones_like(e)
        errors[i] = (wts * e).sum() / wts.sum() if wts.sum() > 0 else unc
    return -np.sort(errors)[-k_worst:].mean(), scale


def main():
    hdr = json.load(open(sys.argv[1]))
    F, h, w = hdr["frames"], hdr["height"], hdr["width"]
    files = hdr["files"]

    def load(key, shape):
        return np.fromfile(files[key], dtype="<f4").reshape(shape) if key in files else None

    depth = load("depth", (F, h, w))
    points = load("points", (F, h, w, 3))
    conf = load("confidence", (F, h, w))
    ext = load("extrinsics", (F, 3, 4))
    intr = load("intrinsics", (F, 3, 3))
    flow = load("scene_flow", (F, h, w, 3))
    reps = hdr.get("repeats", 3)
    reprojection(depth, points, conf, ext, intr, flow)  # warm-up
    t0 = time.perf_counter()
    for _ in range(reps):
        r_geo, scale = reprojection(depth, points, conf, ext, intr, flow)
        r_mot = camera_smoothness(ext, 1e-4 * scale, 1e-4)
    ms = (time.perf_counter() - t0) * 1000 / reps
    print(json.dumps({"motion": r_mot, "reprojection": r_geo, "ms_per_video": ms}))


if __name__ == "__main__":
    main()
