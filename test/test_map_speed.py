"""The fast TSDF integration (mtlsi_core.mapping.tsdf) builds the map the plain way builds: a reference written here
as the integration was before (Open3D's RGB-D integration with the class colour, ``backproject`` with a matrix
product, all votes counted by ``np.unique``) gives the same mesh and the same vote table, also when frames change
size and camera matrix; ``max_size`` integrates every s-th pixel with the scaled camera matrix; the keyframe rule
leaves out frames that barely moved, and repeating a frame under it changes nothing."""
from __future__ import annotations

import numpy as np
import pytest

from mtlsi_core.data.sequence import backproject

SIZE = (96, 128)


@pytest.fixture(scope="module")
def frames(handheld_sequence):
    seq, rendered = handheld_sequence
    return [(f.depth, f.semseg, f.K, T) for f, T in zip(rendered, seq.poses)]


def reference_map(frames, voxel=0.04, trunc=4.0, dmin=0.1, dmax=6.0):
    """(vertices, triangles, vote keys, vote counts) the way the integration was written before it was made fast."""
    from mtlsi_core.mapping import import_open3d
    from mtlsi_core.mapping.tsdf import UNLABELLED, canonical_mesh, class_colors, vote_keys

    o3d = import_open3d()
    c = o3d.core
    vbg = o3d.t.geometry.VoxelBlockGrid(("tsdf", "weight", "color"), (c.float32, c.float32, c.float32),
                                        ((1), (1), (3)), voxel, 8, 20000, c.Device("CPU:0"))
    votes = []
    for depth, labels, K, T in frames:
        d = np.array(depth, np.float32)
        d[~np.isfinite(d) | (d <= dmin) | (d > dmax)] = 0.0
        color = class_colors(labels.reshape(-1)).reshape(*labels.shape, 3).astype(np.float32) / 255.0
        dimg, cimg = o3d.t.geometry.Image(c.Tensor(d)), o3d.t.geometry.Image(c.Tensor(color))
        intr, extr = c.Tensor(K, c.float64), c.Tensor(np.linalg.inv(T), c.float64)
        blocks = vbg.compute_unique_block_coordinates(dimg, intr, extr, 1.0, dmax, trunc)
        vbg.integrate(blocks, dimg, cimg, intr, intr, extr, 1.0, dmax, trunc)
        pts, idx = backproject(d, K, T)
        lab = labels.reshape(-1)[idx].astype(np.int64)
        keep = lab < UNLABELLED
        votes.append((vote_keys(pts[keep], voxel) << 8) | lab[keep])
    mesh = vbg.extract_triangle_mesh(1.0)
    v, t = canonical_mesh(mesh.vertex.positions.numpy().astype(np.float32),
                          mesh.triangle.indices.numpy().astype(np.int32))
    keys, counts = np.unique(np.concatenate(votes), return_counts=True)
    return v, t, keys, counts


def fast_map(frames, **options):
    from mtlsi_core.mapping.tsdf import SemanticTSDF, TSDFOptions

    tsdf = SemanticTSDF(TSDFOptions(**options))
    for depth, labels, K, T in frames:
        tsdf.integrate(depth, labels, K, T)
    return tsdf, tsdf.extract()


def assert_same_map(tsdf, result, ref):
    v, t, keys, counts = ref
    assert np.array_equal(result.vertices, v) and np.array_equal(result.triangles, t)
    tsdf.voxel_labels()  # merges the frames' votes
    assert np.array_equal(tsdf._keys, keys) and np.array_equal(tsdf._counts, counts)


def test_fast_integration_equals_the_plain_one(frames):
    ref = reference_map(frames)
    tsdf, res = fast_map(frames)
    assert len(res.vertices) > 1000 and tsdf.integrated_frames == len(frames)
    assert_same_map(tsdf, res, ref)
    # a hash map that starts too small grows: the same map
    small, res = fast_map(frames, block_count=64)
    assert small.vbg.hashmap().size() > 64
    assert_same_map(small, res, ref)
    # votes merged in several rounds (a small merge threshold) count the same
    from mtlsi_core.mapping import tsdf as mod

    again = mod.SemanticTSDF()
    for i, f in enumerate(frames):
        again.integrate(*f)
        if i % 3 == 2:
            again._compress()
    again.voxel_labels()
    assert np.array_equal(again._keys, ref[2]) and np.array_equal(again._counts, ref[3])


def test_frames_of_other_sizes_and_cameras_remake_the_buffers(frames):
    mixed = []
    for i, (d, lab, K, T) in enumerate(frames):
        if i % 2:  # every other frame at half size with its camera matrix
            K2 = K.copy()
            K2[:2] /= 2
            mixed.append((np.ascontiguousarray(d[::2, ::2]), np.ascontiguousarray(lab[::2, ::2]), K2, T))
        else:
            mixed.append((d, lab, K, T))
    tsdf, res = fast_map(mixed)
    assert_same_map(tsdf, res, reference_map(mixed))


def test_max_size_integrates_every_sth_pixel_with_the_scaled_camera(frames):
    from mtlsi_core.mapping.tsdf import SemanticTSDF, TSDFOptions

    t = SemanticTSDF(TSDFOptions(max_size=(240, 320)))
    assert [t.stride(s) for s in [(240, 320), (200, 320), (480, 640), (448, 576), (720, 1280), (241, 100)]] == \
        [1, 1, 2, 2, 4, 2]
    # a frame twice the size: max_size gives the map of its every other pixel and row
    big = [(np.repeat(np.repeat(d, 2, 0), 2, 1), np.repeat(np.repeat(lab, 2, 0), 2, 1), K * [[2], [2], [1]], T)
           for d, lab, K, T in frames]
    sub = []
    for d, lab, K, T in big:
        K2 = K.copy()
        K2[:2] /= 2
        sub.append((d[::2, ::2], lab[::2, ::2], K2, T))
    tsdf, res = fast_map(big, max_size=SIZE)
    assert tsdf._buf.shape == SIZE
    assert_same_map(tsdf, res, reference_map(sub))
    with pytest.raises(ValueError, match="max size"):
        TSDFOptions(max_size=(0, 320)).check()


def test_keyframe_rule(frames):
    from mtlsi_core.mapping.tsdf import SemanticTSDF, TSDFOptions

    for bad in [dict(keyframe_translation=0.1), dict(keyframe_rotation_deg=5.0),
                dict(keyframe_translation=-0.1, keyframe_rotation_deg=5.0)]:
        with pytest.raises(ValueError, match="keyframe rule"):
            TSDFOptions(**bad).check()
    d, lab, K, T = frames[0]
    t = SemanticTSDF(TSDFOptions(keyframe_translation=0.05, keyframe_rotation_deg=5.0))
    # an empty frame does not become the keyframe
    assert not t.integrate(np.full_like(d, np.nan), lab, K, T) and t.empty_frames == 1
    assert t.integrate(d, lab, K, T)
    assert not t.integrate(d, lab, K, T)  # the same pose: left out
    moved = T.copy()
    moved[:3, 3] += [0.03, 0.0, 0.0]  # 3 cm
    assert not t.is_keyframe(moved)
    moved[:3, 3] += [0.0, 0.025, 0.0]  # ~3.9 cm in all
    assert not t.is_keyframe(moved)
    moved[:3, 3] += [0.0, 0.02, 0.0]  # ~5.4 cm
    assert t.is_keyframe(moved)
    c, s = np.cos(np.radians(4.0)), np.sin(np.radians(4.0))
    turned = T.copy()
    turned[:3, :3] = T[:3, :3] @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    assert not t.is_keyframe(turned)
    c, s = np.cos(np.radians(6.0)), np.sin(np.radians(6.0))
    turned[:3, :3] = T[:3, :3] @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    assert t.is_keyframe(turned)
    res = t.extract()
    assert (t.frames, t.integrated_frames, t.skipped_frames, t.empty_frames) == (3, 1, 1, 1)
    assert (res.frames, res.integrated_frames, res.skipped_frames) == (3, 1, 1)
    # repeating each frame three times under the rule gives the map of the frames once (every frame moved enough)
    once = fast_map(frames[:4])[1]
    rule = fast_map([f for f in frames[:4] for _ in range(3)], keyframe_translation=1e-3, keyframe_rotation_deg=0.1)
    assert rule[0].skipped_frames == 8 and rule[0].integrated_frames == 4
    for field in ("vertices", "triangles", "labels", "confidence"):
        assert np.array_equal(getattr(rule[1], field), getattr(once, field)), field
    # with the rule off every frame goes in
    assert fast_map([frames[0]] * 3)[0].integrated_frames == 3


def test_threads_option():
    from mtlsi_core.mapping import import_open3d
    from mtlsi_core.mapping.tsdf import SemanticTSDF, TSDFOptions

    with pytest.raises(ValueError, match="threads"):
        TSDFOptions(threads=-1).check()
    o3d = import_open3d()
    try:
        SemanticTSDF(TSDFOptions(threads=1))
        assert o3d.utility.get_max_threads() == 1
    finally:
        o3d.utility.set_max_threads(0)
