"""Synthetic sequences and the mapping numerics (mtlsi_core.data.sequence, mtlsi_core.mapping): trajectories stay
smooth, within their carrier's heights and clear of the furniture; ground-truth depth of two frames back-projected
with the poses gives the same surface points; a TSDF of ground truth scores near-perfect; the stability metric is ~0
on ground truth and clearly positive on a deliberately shifted prediction; output files are atomic."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mtlsi_core.data.sequence import (CARRIERS, SequenceSpec, backproject, clearance, footprints, make_sequence,
                                      reference_cloud)

SIZE = (96, 128)


@pytest.fixture(scope="module")
def seq(handheld_sequence):
    return handheld_sequence[0]


@pytest.fixture(scope="module")
def frames(handheld_sequence):
    return handheld_sequence[1]


@pytest.mark.parametrize("kind", ["ground", "handheld"])
def test_trajectory_smooth_within_carrier_limits(kind):
    cr = CARRIERS[kind]
    for seed in range(4):
        s = make_sequence(SequenceSpec(seed=seed, kind=kind, frames=60, rate=30.0, size=(16, 16)))
        p = s.poses[:, :3, 3]
        assert p[:, 2].min() >= cr.height[0] and p[:, 2].max() <= cr.height[1]
        dt = 1.0 / 30.0
        v = np.diff(p, axis=0) / dt
        speed = np.linalg.norm(v, axis=1)
        assert speed.max() <= cr.speed[1] * 1.2 + 0.05, speed.max()  # ellipse: speed varies with the radius
        acc = np.diff(v, axis=0) / dt  # smooth: no jumps between frames
        assert np.linalg.norm(acc[:, :2], axis=1).max() < 1.0, acc
        assert np.abs(acc[:, 2]).max() <= cr.bob_amp * (2 * math.pi * cr.bob_hz) ** 2 * 1.05  # the step bob only
        fwd = s.poses[:, :3, 2]
        turn = np.degrees(np.arccos(np.clip(np.sum(fwd[1:] * fwd[:-1], axis=1), -1, 1))) / dt
        assert turn.max() <= cr.max_yaw_rate_deg * 1.1, turn.max()
        R = s.poses[:, :3, :3]
        assert np.allclose(R.transpose(0, 2, 1) @ R, np.eye(3), atol=1e-9)
        wall, obj = clearance(p[:, :2], s.scene.room, footprints(s.scene))
        assert wall.min() >= 0.45 and obj.min() >= 0.35


def test_sequence_is_deterministic_and_one_room(seq):
    again = make_sequence(seq.spec)
    assert np.array_equal(again.poses, seq.poses)
    assert np.array_equal(again.render(4).image, seq.render(4).image)
    other = make_sequence(SequenceSpec(seed=4, kind="handheld", frames=10, rate=10.0, size=SIZE))
    assert not np.array_equal(other.poses, seq.poses)
    with pytest.raises(ValueError, match="trajectory kind"):
        make_sequence(SequenceSpec(seed=1, kind="drone"))


def test_gt_depth_of_two_frames_backprojects_to_the_same_surface(seq, frames):
    from scipy.spatial import cKDTree

    a, b = 0, 3
    pa, ia = backproject(frames[a].depth, seq.K, seq.poses[a])
    pb, _ = backproject(frames[b].depth, seq.K, seq.poses[b])
    # the points of a that b sees (projected into b in front of its depth) lie on b's surface
    T_b = np.linalg.inv(seq.poses[b])
    pc = pa @ T_b[:3, :3].T + T_b[:3, 3]
    u = seq.K[0, 0] * pc[:, 0] / pc[:, 2] + seq.K[0, 2]
    v = seq.K[1, 1] * pc[:, 1] / pc[:, 2] + seq.K[1, 2]
    h, w = SIZE
    inside = (pc[:, 2] > 0) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    ui, vi = np.rint(u[inside]).astype(int), np.rint(v[inside]).astype(int)
    visible = np.abs(frames[b].depth[vi, ui] - pc[inside, 2]) < 0.05 * pc[inside, 2]
    assert visible.sum() > 0.3 * len(pa)  # the frames overlap
    d, _ = cKDTree(pb).query(pa[inside][visible])
    spacing = float(np.median(frames[a].depth)) / seq.K[0, 0]  # metres between neighbouring pixels
    assert np.median(d) < spacing and np.percentile(d, 90) < 3 * spacing
    # a wrong pose convention (the inverse) does not give the same surface
    wrong = pa @ seq.poses[b][:3, :3] + seq.poses[b][:3, 3]
    assert np.median(cKDTree(pb).query(wrong)[0]) > 10 * spacing


def test_tsdf_of_ground_truth_scores_near_perfect(seq, frames):
    from mtlsi_core.mapping.metrics import score_map
    from mtlsi_core.mapping.tsdf import TSDFOptions, build_map

    res = build_map([(f.depth, f.semseg, f.K, T) for f, T in zip(frames, seq.poses)], TSDFOptions(voxel_size=0.04))
    again = build_map([(f.depth, f.semseg, f.K, T) for f, T in zip(frames, seq.poses)], TSDFOptions(voxel_size=0.04))
    assert np.array_equal(res.vertices, again.vertices) and np.array_equal(res.triangles, again.triangles)
    ref = reference_cloud(seq)
    s = score_map(res.vertices, res.triangles, res.labels, ref["points"], ref["labels"])
    assert len(res.vertices) > 1000 and res.triangles.max() < len(res.vertices)
    assert s["accuracy_m"] < 0.02 and s["completeness_m"] < 0.03, s
    assert s["fscore"] > 0.9 and s["semantic_accuracy"] > 0.9, s
    # a map shifted by 10 cm is measurably worse: the scores see geometry
    s2 = score_map(res.vertices + np.float32([0.1, 0, 0]), res.triangles, res.labels, ref["points"], ref["labels"])
    assert s2["accuracy_m"] > 0.04 and s2["fscore"] < s["fscore"] - 0.3


def test_tsdf_rejects_inconsistent_frames(seq, frames):
    from mtlsi_core.mapping.tsdf import SemanticTSDF

    t = SemanticTSDF()
    f = frames[0]
    with pytest.raises(ValueError, match="same size"):
        t.integrate(f.depth, f.semseg[::2, ::2], f.K, seq.poses[0])
    bad = seq.poses[0].copy()
    bad[:3, :3] *= 2
    with pytest.raises(ValueError, match="orthonormal"):
        t.integrate(f.depth, f.semseg, f.K, bad)
    with pytest.raises(ValueError, match="no frame"):
        t.extract()
    t.integrate(np.full_like(f.depth, np.nan), f.semseg, f.K, seq.poses[0])  # nothing valid: an empty map
    empty = t.extract()
    assert t.empty_frames == 1 and len(empty.vertices) == 0 and len(empty.triangles) == 0


def test_stability_zero_on_ground_truth_positive_on_shifted(seq, frames):
    from mtlsi_core.mapping.stability import StabilityAccumulator, pair_disagreement

    gt, shifted = StabilityAccumulator(), StabilityAccumulator()
    for a in range(len(frames) - 1):
        fa, fb = frames[a], frames[a + 1]
        args = (seq.K, seq.K, seq.poses[a], seq.poses[a + 1])
        gt.add(pair_disagreement(fa.depth, fb.depth, fa.semseg, fb.semseg, *args, fa.depth, fb.depth, fb.semseg))
        # every other frame 8 % too far, labels of b moved by 4 pixels
        da = fa.depth * (1.08 if a % 2 else 1.0)
        db = fb.depth * (1.08 if (a + 1) % 2 else 1.0)
        shifted.add(pair_disagreement(da, db, fa.semseg, np.roll(fb.semseg, 4, axis=1), *args, fa.depth, fb.depth,
                                      fb.semseg))
    g, s = gt.result(), shifted.result()
    assert g["pairs"] == len(frames) - 1 and g["depth_pixels"] > 1000
    assert g["depth_rel_mean"] < 1e-3 and g["label_flip_rate"] < 1e-3, g
    assert s["depth_rel_mean"] > 0.05 and s["label_flip_rate"] > 0.01, s
    assert abs(s["depth_rel_mean"] - 0.08 / 1.08) < 0.01  # |1.08 z - z| / (1.08 z) or / z, averaged


def test_map_files_and_atomic_folder(tmp_path, seq, frames):
    from mtlsi_core.mapping.io import AtomicFolder, ply_mesh_bytes, ply_points_bytes, read_ply_vertices
    from mtlsi_core.mapping.render import perspective, sample_surface, topdown
    from mtlsi_core.mapping.tsdf import build_map

    res = build_map([(f.depth, f.semseg, f.K, T) for f, T in zip(frames[:3], seq.poses[:3])])
    (tmp_path / "m.ply").write_bytes(ply_points_bytes(res.vertices, res.colors, res.labels, res.confidence))
    back = read_ply_vertices(tmp_path / "m.ply")
    assert np.array_equal(back["label"], res.labels) and np.allclose(back["x"], res.vertices[:, 0])
    mesh = ply_mesh_bytes(res.vertices, res.triangles, res.colors, res.labels)
    assert f"element face {len(res.triangles)}".encode() in mesh
    pts, labs, cols = sample_surface(res.vertices, res.triangles, res.labels, res.colors, spacing=0.02)
    top = topdown(pts, labs, cols)
    view = perspective(pts, cols, seq.K, seq.poses[0], SIZE)
    assert top.ndim == 3 and (top != 255).any(axis=2).mean() > 0.2
    assert (view != 255).any(axis=2).mean() > 0.8  # the first pose sees its own map
    out = tmp_path / "maps"
    with pytest.raises(RuntimeError):
        with AtomicFolder(out) as tmp:
            (tmp / "a.txt").write_text("x")
            raise RuntimeError("fails half way")
    assert not out.exists() and not list(tmp_path.glob(".maps*"))
    with AtomicFolder(out) as tmp:
        (tmp / "a.txt").write_text("x")
    assert (out / "a.txt").read_text() == "x"
    with pytest.raises(FileExistsError):
        with AtomicFolder(out):
            pass
