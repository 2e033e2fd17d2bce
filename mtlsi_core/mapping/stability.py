"""Temporal stability of per-frame outputs over a posed sequence: frame-to-frame disagreement after warping.

For consecutive frames a -> b with poses ``T_map_a``, ``T_map_b`` (camera optical frames) and camera matrices, every
pixel of a with a valid *geometry* depth (ground truth where the sequence has it, else the prediction itself) is
back-projected, moved into b (``T_b^-1 T_a``) and projected. It counts where it lands inside b and is visible there
(b's geometry depth at that pixel within ``occlusion_tol`` of the warped z; occluded and disoccluded pixels are left
out) and away from depth discontinuities of b's geometry (the 2 x 2 pixels around the landing point within
``occlusion_tol`` of each other) and, when ground-truth labels are given, away from their class boundaries (the same
2 x 2 pixels all of one class). Then:

    depth disagreement  |z_a->b - d_b(p')| / d_b(p'): a's predicted point moved into b against b's prediction,
                        bilinear at the landing point p' (the relative error of a prediction that moves with the
                        camera; 0 for a perfectly consistent one)
    label disagreement  share of pixels whose class in a differs from b's at the nearest pixel (both classified)

Ground truth through the same path is the sanity floor (interpolation leaves ~1e-3 of depth, no label flips).
Everything is vectorised numpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

UNLABELLED = 255


@dataclass
class StabilityAccumulator:
    """Sums over frame pairs; ``result()`` gives pixel-weighted means."""

    pairs: int = 0
    depth_pixels: int = 0
    depth_sum: float = 0.0
    depth_over_5pct: int = 0
    label_pixels: int = 0
    label_flips: int = 0
    per_pair: list = field(default_factory=list)

    def add(self, r: dict) -> None:
        self.pairs += 1
        self.depth_pixels += r["depth_pixels"]
        self.depth_sum += r["depth_sum"]
        self.depth_over_5pct += r["depth_over_5pct"]
        self.label_pixels += r["label_pixels"]
        self.label_flips += r["label_flips"]
        self.per_pair.append({k: r[k] for k in ("depth_rel", "label_flip")})

    def result(self) -> dict:
        return {"pairs": self.pairs, "depth_pixels": self.depth_pixels, "label_pixels": self.label_pixels,
                "depth_rel_mean": self.depth_sum / self.depth_pixels if self.depth_pixels else float("nan"),
                "depth_rel_over_5pct": self.depth_over_5pct / self.depth_pixels if self.depth_pixels else float("nan"),
                "label_flip_rate": self.label_flips / self.label_pixels if self.label_pixels else float("nan")}


def _bilinear(img: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear values at (u, v) and the four corner values (for continuity tests)."""
    u0 = np.floor(u).astype(np.int64)
    v0 = np.floor(v).astype(np.int64)
    fu, fv = u - u0, v - v0
    c00, c01 = img[v0, u0], img[v0, u0 + 1]
    c10, c11 = img[v0 + 1, u0], img[v0 + 1, u0 + 1]
    val = (c00 * (1 - fu) + c01 * fu) * (1 - fv) + (c10 * (1 - fu) + c11 * fu) * fv
    return val, np.stack([c00, c01, c10, c11]), np.stack([v0, u0])


def pair_disagreement(pred_depth_a: np.ndarray, pred_depth_b: np.ndarray, labels_a: np.ndarray | None,
                      labels_b: np.ndarray | None, K_a: np.ndarray, K_b: np.ndarray, T_a: np.ndarray,
                      T_b: np.ndarray, geo_depth_a: np.ndarray | None = None, geo_depth_b: np.ndarray | None = None,
                      gt_labels_b: np.ndarray | None = None, occlusion_tol: float = 0.03) -> dict:
    """Disagreement of frame a's outputs with frame b's (module docstring). Depths in metres (NaN / <= 0 invalid)."""
    geo_a = pred_depth_a if geo_depth_a is None else geo_depth_a
    geo_b = pred_depth_b if geo_depth_b is None else geo_depth_b
    h, w = geo_b.shape
    ga = np.asarray(geo_a, np.float64).reshape(-1)
    ok = np.isfinite(ga) & (ga > 0)
    pa = np.asarray(pred_depth_a, np.float64).reshape(-1)
    ok &= np.isfinite(pa) & (pa > 0)
    idx = np.flatnonzero(ok)
    va, ua = np.divmod(idx, geo_a.shape[1])
    rays = np.stack([(ua - K_a[0, 2]) / K_a[0, 0], (va - K_a[1, 2]) / K_a[1, 1], np.ones(len(idx))], axis=1)
    T_ba = np.linalg.inv(T_b) @ T_a
    R, t = T_ba[:3, :3], T_ba[:3, 3]
    geo_pts = (rays * ga[idx, None]) @ R.T + t
    z = geo_pts[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K_b[0, 0] * geo_pts[:, 0] / z + K_b[0, 2]
        v = K_b[1, 1] * geo_pts[:, 1] / z + K_b[1, 2]
    inside = (z > 0) & (u >= 0) & (u < w - 1) & (v >= 0) & (v < h - 1)
    idx, z, u, v, rays = idx[inside], z[inside], u[inside], v[inside], rays[inside]
    gb = np.where(np.isfinite(geo_b) & (geo_b > 0), geo_b, np.nan).astype(np.float64)
    g_val, g_corners, (v0, u0) = _bilinear(gb, u, v)
    with np.errstate(invalid="ignore"):
        lo, hi = g_corners.min(axis=0), g_corners.max(axis=0)
        cont = np.isfinite(lo) & np.isfinite(hi) & (hi - lo <= occlusion_tol * lo)
        visible = cont & (np.abs(g_val - z) <= occlusion_tol * z)
    if gt_labels_b is not None:
        gl = np.asarray(gt_labels_b)
        c4 = np.stack([gl[v0, u0], gl[v0, u0 + 1], gl[v0 + 1, u0], gl[v0 + 1, u0 + 1]])
        visible &= np.all(c4 == c4[0], axis=0)
    idx, u, v, rays = idx[visible], u[visible], v[visible], rays[visible]
    # depth: a's predicted point in b against b's prediction at the landing point
    pb = np.where(np.isfinite(pred_depth_b) & (pred_depth_b > 0), pred_depth_b, np.nan).astype(np.float64)
    z_pred = ((rays * pa[idx, None]) @ R.T + t)[:, 2]
    pb_val, pb_corners, _ = _bilinear(pb, u, v)
    dok = np.isfinite(pb_val) & (pb_val > 0)
    rel = np.abs(z_pred[dok] - pb_val[dok]) / pb_val[dok]
    out = {"depth_pixels": int(dok.sum()), "depth_sum": float(rel.sum()), "depth_over_5pct": int((rel > 0.05).sum()),
           "depth_rel": float(rel.mean()) if rel.size else float("nan"), "label_pixels": 0, "label_flips": 0,
           "label_flip": float("nan")}
    if labels_a is not None and labels_b is not None:
        la = np.asarray(labels_a).reshape(-1)[idx]
        lb = np.asarray(labels_b)[np.rint(v).astype(np.int64), np.rint(u).astype(np.int64)]
        lok = (la != UNLABELLED) & (lb != UNLABELLED)
        flips = int(np.sum(la[lok] != lb[lok]))
        out.update(label_pixels=int(lok.sum()), label_flips=flips,
                   label_flip=flips / int(lok.sum()) if lok.any() else float("nan"))
    return out


__all__ = ["StabilityAccumulator", "pair_disagreement"]
