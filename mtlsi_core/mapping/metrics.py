"""Scores of a map against a ground-truth surface (points with class labels), as 3D reconstruction papers report
them:

    accuracy      mean distance (m) from each map point (mesh vertex) to the nearest ground-truth point
    completeness  mean distance (m) from each ground-truth point to the map's surface (its triangles, exact
                  point-to-triangle distance by Open3D's RaycastingScene; the nearest vertex when there are none)
    precision / recall at ``threshold``: shares of those distances below it; F-score their harmonic mean
    semantic accuracy  share of map points within ``threshold`` of the ground truth whose label equals the label of
                  the nearest ground-truth point (ground-truth points without a class are left out; map points
                  without a vote count as wrong)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mtlsi_core.mapping import import_open3d

UNLABELLED = 255


def _nearest(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial import cKDTree

    if len(dst) == 0:
        return np.full(len(src), np.inf), np.zeros(len(src), np.int64)
    d, i = cKDTree(np.asarray(dst, np.float64)).query(np.asarray(src, np.float64), k=1, workers=1)
    return d, i


def surface_distance(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unsigned distance of each point to a triangle mesh (to its vertices if it has no triangles)."""
    if len(triangles) == 0:
        return _nearest(points, vertices)[0]
    o3d = import_open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(vertices, np.float32)),
                        o3d.core.Tensor(np.ascontiguousarray(triangles, np.uint32)))
    q = o3d.core.Tensor(np.ascontiguousarray(points, np.float32))
    return scene.compute_distance(q).numpy().astype(np.float64)


def score_map(vertices: np.ndarray, triangles: np.ndarray, labels: np.ndarray, ref_points: np.ndarray,
              ref_labels: np.ndarray, threshold: float = 0.05) -> dict[str, Any]:
    """The scores of the module docstring (distances in metres, shares in [0, 1])."""
    vertices = np.asarray(vertices, np.float64).reshape(-1, 3)
    ref_points = np.asarray(ref_points, np.float64).reshape(-1, 3)
    if len(ref_points) == 0:
        raise ValueError("the ground-truth surface has no points")
    out: dict[str, Any] = {"map_points": int(len(vertices)), "map_triangles": int(len(triangles)),
                           "reference_points": int(len(ref_points)), "threshold_m": float(threshold)}
    if len(vertices) == 0:
        out.update(accuracy_m=float("nan"), completeness_m=float("nan"), precision=0.0, recall=0.0, fscore=0.0,
                   semantic_accuracy=float("nan"), semantic_points=0)
        return out
    acc_d, nn = _nearest(vertices, ref_points)
    comp_d = surface_distance(ref_points, vertices, np.asarray(triangles).reshape(-1, 3))
    precision = float(np.mean(acc_d < threshold))
    recall = float(np.mean(comp_d < threshold))
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    near = acc_d < threshold
    ref_l = np.asarray(ref_labels)[nn]
    sem = near & (ref_l != UNLABELLED)
    out.update(accuracy_m=float(acc_d.mean()), accuracy_median_m=float(np.median(acc_d)),
               completeness_m=float(comp_d.mean()), completeness_median_m=float(np.median(comp_d)),
               precision=precision, recall=recall, fscore=float(f),
               semantic_accuracy=float(np.mean(np.asarray(labels)[sem] == ref_l[sem])) if sem.any() else float("nan"),
               semantic_points=int(sem.sum()))
    return out


__all__ = ["score_map", "surface_distance"]
