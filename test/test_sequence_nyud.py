"""Sequences in ``nyud`` rooms and the ground robot's fixed camera mount (mtlsi_core.data.sequence): the room is the
single-frame nyud profile's, the frames are rendered as that profile renders single frames (the per-sequence shadow
maps change no pixel), poses keep clear of the room's walls and of its (cluttered) furniture in 3D, ground-truth
depth of consecutive frames back-projects onto the same surface, a ground robot's mount is constant (base on the
floor, camera rigid on it) with CameraMount's signs, and the basic handheld sequences are those of before."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mtlsi_core.data.sequence import (CARRIERS, MIN_SEMI_AXIS_NARROW, OBSTACLE_MAX_BOTTOM, Mount, SequenceSpec,
                                      backproject, clearance, make_sequence, obstacles)

SIZE = (72, 96)


@pytest.fixture(scope="module")
def ground():
    return make_sequence(SequenceSpec(seed=14, kind="ground", frames=6, rate=10.0, size=SIZE, profile="nyud"))


@pytest.fixture(scope="module")
def handheld():
    return make_sequence(SequenceSpec(seed=12, kind="handheld", frames=6, rate=10.0, size=SIZE, profile="nyud"))


def test_profile_is_checked():
    with pytest.raises(ValueError, match="profile must be one of basic, nyud, got 'mars'"):
        SequenceSpec(1, profile="mars").check()
    assert SequenceSpec(1).profile == "basic"  # the recorded sequences' default


def test_nyud_room_deterministic_per_seed(ground, handheld):
    from mtlsi_core.data.rooms import ROOM_TYPES, RoomScene

    for seq in (ground, handheld):
        assert isinstance(seq.scene, RoomScene) and seq.room_type in ROOM_TYPES
        again = make_sequence(seq.spec)
        assert np.array_equal(again.poses, seq.poses) and again.room_type == seq.room_type
        assert np.array_equal(again.scene.room, seq.scene.room) and len(again.scene.parts) == len(seq.scene.parts)
        a, b = seq.render(2), again.render(2)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.depth, b.depth)
        assert np.array_equal(a.semseg, b.semseg)
    other = make_sequence(SequenceSpec(seed=13, kind="ground", frames=6, rate=10.0, size=SIZE, profile="nyud"))
    assert not np.array_equal(other.poses, ground.poses)
    # the same seed in the basic profile is another room (the profile picks the room recipes)
    basic = make_sequence(SequenceSpec(seed=14, kind="ground", frames=6, rate=10.0, size=SIZE))
    assert basic.room_type == "basic" and not hasattr(basic.scene, "room_type")


def test_room_is_the_single_frame_nyud_room(ground):
    """The sequence's room is what the single-frame nyud profile draws from the sequence's room stream."""
    from mtlsi_core.data.synth import sample_profile_scene

    for attempt in range(20):
        rng = np.random.default_rng(np.random.SeedSequence([ground.spec.seed, 1, attempt]))
        room = sample_profile_scene(rng, "nyud")
        if np.array_equal(room.room, ground.scene.room):
            break
    else:
        pytest.fail("the sequence's room is none of the nyud rooms of its seed's stream")
    assert room.room_type == ground.room_type and len(room.parts) == len(ground.scene.parts)
    assert all(np.array_equal(p.prim.center, q.prim.center) for p, q in zip(room.parts, ground.scene.parts))


def test_frames_rendered_as_the_nyud_profile_renders_single_frames(ground):
    """The nyud renderer (shadows, AO, supersampling, the camera model) with the sequence's one camera; the shadow
    maps cached over the sequence give the same pixels as maps rendered for that frame alone."""
    from dataclasses import replace

    from mtlsi_core.data.synth import render_nyud

    k = 3
    f = ground.render(k)
    T = ground.poses[k]
    view = replace(ground.scene, cam_pos=T[:3, 3].copy(), R_wc=T[:3, :3].copy())
    rng = np.random.default_rng(np.random.SeedSequence([ground.spec.seed, 2, k]))
    fresh = render_nyud(view, ground.K, SIZE, rng, params=ground.camera)  # no cache: its own shadow maps
    # the cache was used, one map per shadowed light (this room has several, so a mix-up would show)
    assert len(ground.shadow_maps) == sum(lt.axis is not None and lt.shadows for lt in ground.scene.lights) >= 3
    assert np.array_equal(f.image, fresh.image)
    assert np.array_equal(f.depth, fresh.depth) and np.array_equal(f.semseg, fresh.semseg)
    assert np.array_equal(f.normals, fresh.normals) and np.array_equal(f.edge, fresh.edge)
    # one camera for the sequence: frame k's image is not that of another camera drawn for it alone
    rng = np.random.default_rng(np.random.SeedSequence([ground.spec.seed, 2, k]))
    assert not np.array_equal(render_nyud(view, ground.K, SIZE, rng).image, f.image)


def _inside_a_part(points: np.ndarray, scene) -> np.ndarray:
    """Whether each point lies within 0.1 m of a part's bounding box (its yawed box)."""
    hit = np.zeros(len(points), bool)
    for part in scene.parts:
        c, h, yaw = part.prim.center, part.prim.half_extent_local(), float(part.prim.yaw)
        d = points - c
        lx = math.cos(yaw) * d[:, 0] + math.sin(yaw) * d[:, 1]
        ly = -math.sin(yaw) * d[:, 0] + math.cos(yaw) * d[:, 1]
        hit |= (np.abs(lx) <= h[0] + 0.1) & (np.abs(ly) <= h[1] + 0.1) & (np.abs(d[:, 2]) <= h[2] + 0.1)
    return hit


@pytest.mark.parametrize("kind", ["ground", "handheld"])
def test_nyud_poses_keep_clearance(kind):
    cr = CARRIERS[kind]
    rooms = set()
    for seed in range(6):
        s = make_sequence(SequenceSpec(seed=seed, kind=kind, frames=60, rate=30.0, size=(16, 16), profile="nyud"))
        rooms.add(s.room_type)
        p = s.poses[:, :3, 3]
        assert p[:, 2].min() >= cr.height[0] and p[:, 2].max() <= cr.height[1]
        room = s.scene.room
        assert np.all(p > 0) and np.all(p < room), "a camera outside its room"
        fps = obstacles(s.scene, "nyud")
        wall, obj = clearance(p[:, :2], room, fps)
        assert wall.min() >= 0.45 and obj.min() >= 0.35, (seed, wall.min(), obj.min())
        # the obstacles are every part within a camera's reach that is not flat on the floor (clutter included) ...
        low = [q for q in s.scene.parts if 2 * q.prim.half_extent_local()[2] >= 0.05
               and q.prim.center[2] - q.prim.half_extent_local()[2] <= OBSTACLE_MAX_BOTTOM]
        assert len(fps) == len(low) > 0
        # ... and, checked in 3D against every part's box (ceiling lights included), no camera is in or near one
        assert not _inside_a_part(p, s.scene).any(), seed
        speed = np.linalg.norm(np.diff(p, axis=0), axis=1) * 30.0
        assert speed.max() <= cr.speed[1] * 1.2 + 0.05
        if kind == "ground":
            base = s.base_poses[:, :2, 3]
            bw, bo = clearance(base, room, fps)
            assert bw.min() >= 0.2 and bo.min() >= 0.2
        a = s.path.a
        assert MIN_SEMI_AXIS_NARROW <= a <= 1.4
    assert len(rooms) >= 3, rooms  # several room types over six seeds


@pytest.mark.parametrize("kind", ["ground", "handheld"])
def test_nyud_gt_depth_of_consecutive_frames_lands_on_the_same_surface(kind, ground, handheld):
    from scipy.spatial import cKDTree

    seq = ground if kind == "ground" else handheld
    h, w = SIZE
    for a in range(len(seq) - 1):
        b = a + 1
        fa, fb = seq.geometry(a), seq.geometry(b)
        pa, _ = backproject(fa.depth, seq.K, seq.poses[a])
        pb, _ = backproject(fb.depth, seq.K, seq.poses[b])
        T_b = np.linalg.inv(seq.poses[b])
        pc = pa @ T_b[:3, :3].T + T_b[:3, 3]
        u = seq.K[0, 0] * pc[:, 0] / pc[:, 2] + seq.K[0, 2]
        v = seq.K[1, 1] * pc[:, 1] / pc[:, 2] + seq.K[1, 2]
        inside = (pc[:, 2] > 0) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
        ui, vi = np.rint(u[inside]).astype(int), np.rint(v[inside]).astype(int)
        visible = np.abs(fb.depth[vi, ui] - pc[inside, 2]) < 0.05 * pc[inside, 2]
        assert visible.sum() > 0.5 * len(pa)  # consecutive frames overlap
        d, _ = cKDTree(pb).query(pa[inside][visible])
        spacing = float(np.median(fa.depth)) / seq.K[0, 0]
        assert np.median(d) < spacing and np.percentile(d, 90) < 3 * spacing, (a, np.median(d), spacing)
        # the rendered frame's ground truth is this exact geometry
        f = seq.render(a) if a == 0 else None
        if f is not None:
            assert np.array_equal(f.depth, fa.depth) and np.array_equal(f.semseg, fa.semseg)


def test_ground_mount_is_constant_and_rigid(ground):
    cr = CARRIERS["ground"]
    m = ground.mount
    assert isinstance(m, Mount) and ground.base_poses.shape == ground.poses.shape
    assert cr.height[0] <= m.height_m <= cr.height[1]
    assert -cr.pitch_deg[1] <= m.pitch_deg <= -cr.pitch_deg[0]  # the carrier's pitch, in CameraMount's sign
    assert abs(m.roll_deg) <= cr.roll_amp_deg and cr.forward[0] <= m.forward_m <= cr.forward[1]
    Tbc = m.T_base_cam()
    for T_mb, T_mc in zip(ground.base_poses, ground.poses):
        np.testing.assert_allclose(T_mb[2, 3], 0.0, atol=0)  # the base is on the floor
        np.testing.assert_allclose(T_mb[:3, 2], [0.0, 0.0, 1.0], atol=1e-12)  # it only turns about z
        np.testing.assert_allclose(np.linalg.inv(T_mb) @ T_mc, Tbc, atol=1e-9)  # the camera is rigid on it
        np.testing.assert_allclose(T_mc[2, 3], m.height_m, atol=1e-12)
        # CameraMount's signs, from the pose alone: pitch > 0 looks down, roll > 0 lowers the image's right side
        p, r = math.radians(m.pitch_deg), math.radians(m.roll_deg)
        np.testing.assert_allclose(T_mc[2, 2], -math.sin(p), atol=1e-9)
        np.testing.assert_allclose(T_mc[2, 0], -math.sin(r) * math.cos(p), atol=1e-9)
    assert np.ptp(ground.base_poses[:, :2, 3], axis=0).max() > 0.05  # the base moves
    # a handheld camera has no mount, and its height bobs
    hh = make_sequence(SequenceSpec(seed=12, kind="handheld", frames=20, rate=10.0, size=(16, 16), profile="nyud"))
    assert hh.mount is None and hh.base_poses is None and np.ptp(hh.poses[:, 2, 3]) > 1e-3
    with pytest.raises(ValueError, match="handheld camera has no base"):
        hh.path.base_pose(0.0)


def test_mount_signs_agree_with_floor_anchoring(ground):
    anchoring = pytest.importorskip("mtlsi_core.anchoring")
    m = ground.mount
    want = anchoring.FloorPlane.from_mount(anchoring.CameraMount(m.height_m, m.pitch_deg, m.roll_deg))
    for T in ground.poses:
        got = anchoring.FloorPlane.from_pose(T)
        np.testing.assert_allclose(got.normal, want.normal, atol=1e-9)
        assert got.offset == pytest.approx(want.offset, abs=1e-12)
    # a mount with a clear roll and pitch, to be sure the signs are not compared at zero
    big = Mount(0.5, 12.0, 7.0, 0.1)
    got = anchoring.FloorPlane.from_pose(big.T_base_cam()).mount()
    assert got.pitch_deg == pytest.approx(12.0, abs=1e-9) and got.roll_deg == pytest.approx(7.0, abs=1e-9)


def test_basic_handheld_sequences_unchanged():
    """The basic handheld trajectories of before nyud rooms and mounts (recorded from that code)."""
    s = make_sequence(SequenceSpec(seed=3, kind="handheld", frames=10, rate=10.0, size=(96, 128)))
    np.testing.assert_allclose(s.poses[0], RECORDED_SEED3_POSE0, atol=1e-9)
    np.testing.assert_allclose(s.poses[9], RECORDED_SEED3_POSE9, atol=1e-9)


# SequenceSpec(3, "handheld", 10, 10.0, (96, 128)) at commit 4181afc (before nyud sequences), 12 decimals
RECORDED_SEED3_POSE0 = [[-0.252564137333, 0.357895155779, -0.898956291487, 3.390917468373],
                        [0.967576572018, 0.095948231186, -0.233643990322, 1.937156660772],
                        [0.002633213768, -0.928819139769, -0.370524050209, 1.487942436255], [0.0, 0.0, 0.0, 1.0]]
RECORDED_SEED3_POSE9 = [[-0.525935573, 0.296436017465, -0.797193490066, 3.216037934596],
                        [0.849649859573, 0.225611720692, -0.476649208133, 2.456983841584],
                        [0.038560202031, -0.928022111286, -0.370524050209, 1.480183186402], [0.0, 0.0, 0.0, 1.0]]
