"""Generator profiles: the basic profile unchanged, the nyud profile's exact ground truth, shadows, the camera model
that touches only the image, room types, the CLI flag and bad input."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mtlsi_core.data import rooms, synth
from mtlsi_core.data.raycast import Box, Cylinder, Sphere
from mtlsi_core.data.render import lighting, sensor
from mtlsi_core.data.render.textures import tex_material
from mtlsi_core.data.scene import CLASS_ID, Part
from synth_helpers import expected_boundaries

REFERENCE = Path(__file__).parent / "data" / "synth_basic_reference.npz"
SIZE = (60, 80)


def _rays(K: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones((h, w))], axis=-1)


@pytest.fixture(scope="module")
def nyud_frames() -> list[tuple[int, synth.SynthFrame]]:
    return [(s, synth.render_scene(s, SIZE, profile="nyud")) for s in (0, 1, 2)]


# ---------------------------------------------------------------------------------------------- basic profile
def test_basic_profile_is_unchanged():
    """Frames of the basic profile as the generator made them before profiles existed (reference saved from
    commit 581ad6f): labels, object ids and boundaries exactly; depth and normals to float32 rounding; the
    image to one grey level (vectorised sin / blur may round differently on another CPU)."""
    ref = np.load(REFERENCE)
    for seed in (0, 1, 2, 5):
        f = synth.render_scene(seed, (36, 48))
        assert np.array_equal(f.semseg, ref[f"semseg_{seed}"])
        assert np.array_equal(f.instance, ref[f"instance_{seed}"])
        assert np.array_equal(f.edge, ref[f"edge_{seed}"])
        assert np.allclose(f.depth, ref[f"depth_{seed}"], rtol=1e-6, atol=0)
        assert np.allclose(f.normals, ref[f"normals_{seed}"], atol=1e-6)
        diff = np.abs(f.image.astype(np.int16) - ref[f"image_{seed}"])
        assert diff.max() <= 1 and diff.mean() < 0.01, seed
        again = synth.render_scene(seed, (36, 48), profile="basic")
        assert np.array_equal(again.image, f.image)


# ---------------------------------------------------------------------------------------------- nyud ground truth
def _surface_distance(prim, P: np.ndarray) -> np.ndarray:
    """Unsigned distance of world points (n, 3) to the surface of a primitive."""
    q = np.stack(prim.to_local(P[:, 0], P[:, 1], P[:, 2]), axis=-1)
    if isinstance(prim, Box):
        d = np.abs(q) - prim.half
        return np.abs(np.linalg.norm(np.maximum(d, 0), axis=-1) + np.minimum(d.max(axis=-1), 0))
    if isinstance(prim, Cylinder):
        d = np.stack([np.hypot(q[:, 0], q[:, 1]) - prim.radius, np.abs(q[:, 2]) - prim.half_height], -1)
        return np.abs(np.linalg.norm(np.maximum(d, 0), axis=-1) + np.minimum(d.max(axis=-1), 0))
    assert isinstance(prim, Sphere)
    return np.abs(np.linalg.norm(q, axis=-1) - prim.radius)


def test_nyud_depth_and_labels_agree_with_the_scene_geometry(nyud_frames):
    """Every pixel's back-projected point lies on a surface of the object its id names, with that object's label."""
    for seed, f in nyud_frames:
        scene = rooms.sample_room(np.random.default_rng(seed))
        assert np.array_equal(f.semseg, np.array(scene.labels, np.uint8)[f.instance])
        cam = (_rays(f.K, f.depth.shape) * f.depth[..., None]).reshape(-1, 3)
        P = cam @ scene.R_wc.T + scene.cam_pos
        inst = f.instance.ravel()
        for obj in np.unique(inst):
            pts = P[inst == obj]
            if obj < 6:  # a room face: the plane it names
                axis, far = divmod(int(obj), 2)  # face codes: 0 / 1 x = 0 / Lx, 2 / 3 y, 4 floor, 5 ceiling
                plane = scene.room[axis] if far else 0.0
                assert np.abs(pts[:, axis] - plane).max() < 2e-3 * max(1.0, float(scene.room[axis]))
                continue
            prims = [p.prim for p in scene.parts if p.obj == obj]
            dist = np.min([_surface_distance(p, pts) for p in prims], axis=0)
            assert dist.max() < 3e-3, (seed, obj, dist.max())


def test_nyud_normals_floor_and_boundaries(nyud_frames):
    floors = 0
    for seed, f in nyud_frames:
        assert f.image.shape == SIZE + (3,) and f.image.dtype == np.uint8
        assert np.all(np.isfinite(f.depth)) and f.depth.min() > 0
        assert np.allclose(np.linalg.norm(f.normals, axis=-1), 1.0, atol=1e-4)
        assert np.einsum("hwc,hwc->hw", f.normals, _rays(f.K, f.depth.shape)).max() <= 1e-5
        floor = f.instance == 4
        if floor.sum() > 100:
            pts = (_rays(f.K, f.depth.shape) * f.depth[..., None])[floor].astype(np.float64)
            n = f.normals[floor][0]
            assert np.allclose(f.normals[floor], n, atol=1e-5)
            height = abs(float(pts.mean(0) @ n))
            assert 1.0 - 1e-3 <= height <= 1.7 + 1e-3  # the nyud camera's height range
            assert np.abs((pts - pts.mean(0)) @ n).max() < 1e-3
            floors += 1
        assert np.array_equal(f.edge.astype(bool), expected_boundaries(f.instance, f.depth))
    assert floors >= 1


def test_nyud_same_seed_same_frame(nyud_frames):
    seed, f = nyud_frames[0]
    again = synth.render_scene(seed, SIZE, profile="nyud")
    for field in ("image", "semseg", "depth", "normals", "edge", "instance"):
        assert np.array_equal(getattr(again, field), getattr(f, field)), field
    assert not np.array_equal(nyud_frames[1][1].image, f.image)


def test_sensor_never_touches_ground_truth(monkeypatch):
    """Two very different cameras: different images, identical ground truth; and the ground truth is the cast's."""
    plain = sensor.SensorParams.plain()
    harsh = sensor.SensorParams(vignetting=0.5, aberration=0.01, defocus=2.0, motion=6.0, motion_angle=0.7, sharpen=1.0,
                                exposure_ev=1.5, mid_grey=0.3, shot=0.01, read=0.01, wb_strength=1.0,
                                wb_tint=(1.2, 0.9, 0.8), gamma=2.4, contrast=0.6, saturation=1.6, jpeg_quality=40)
    frames = []
    for params in (plain, harsh):
        monkeypatch.setattr(sensor.SensorParams, "sample", classmethod(lambda cls, rng, p=params: p))
        frames.append(synth.render_scene(3, SIZE, profile="nyud"))
    a, b = frames
    assert np.abs(a.image.astype(int) - b.image).mean() > 5
    for field in ("semseg", "depth", "normals", "edge", "instance", "K"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    scene = rooms.sample_room(np.random.default_rng(3))
    c = synth.cast(scene, synth.kinect_intrinsics(SIZE), SIZE)
    assert np.array_equal(c.depth, a.depth) and np.array_equal(c.semseg, a.semseg)
    assert np.array_equal(np.stack(c.n, -1), a.normals)


# ---------------------------------------------------------------------------------------------- shadows
def _shadow_scene(with_slab: bool, shadows: bool) -> rooms.RoomScene:
    rng = np.random.default_rng(0)
    grey = tex_material(rng, [3], ["plain"], gloss=(0.0, 0.0))
    parts = []
    if with_slab:  # a table top over the floor point (2, 2, 0), under the light
        parts.append(Part(Box(center=np.array([2.0, 2.0, 1.0]), half=np.array([0.4, 0.4, 0.02])), grey, 6))
    light = lighting.RoomLight(2.0, position=np.array([2.0, 2.0, 2.9]), axis=np.array([0.0, 0.0, -1.0]),
                               lobe=1.0, shadows=shadows)
    from mtlsi_core.data.scene import optical_rotation

    R = optical_rotation(0.0, math.radians(-25.0), 0.0)  # looking along +x, down at the floor under the table
    labels = [CLASS_ID[n] for n in ("wall",) * 4 + ("floor", "ceiling", "table")]
    return rooms.RoomScene(np.array([5.0, 4.0, 3.0]), [grey] * 6, parts, labels,
                           [light], 0.1, np.array([0.3, 2.0, 0.6]), R, 1.0)


def test_a_shadowed_point_is_darker_than_the_same_point_lit():
    size = (60, 80)
    K = synth.kinect_intrinsics(size)
    scene = _shadow_scene(True, True)
    c = synth.cast(scene, K, size)
    # the camera's pixel of the floor point (2, 2, 0), seen below the slab
    pc = scene.R_wc.T @ (np.array([2.0, 2.0, 0.0]) - scene.cam_pos)
    u, v = int(round(K[0, 0] * pc[0] / pc[2] + K[0, 2])), int(round(K[1, 1] * pc[1] / pc[2] + K[1, 2]))
    assert c.instance[v, u] == 4  # the floor is visible there
    ao = np.ones(size, np.float32)
    shadowed = lighting.shade(scene, c, ao)[v, u]
    lit = lighting.shade(_shadow_scene(True, False), c, ao)[v, u]
    assert shadowed.sum() < 0.5 * lit.sum()
    assert shadowed.sum() > 0  # still the ambient light
    # a floor point beside the table's shadow is lit either way
    far = np.array([3.2, 0.8, 0.0])
    pc = scene.R_wc.T @ (far - scene.cam_pos)
    u2, v2 = int(round(K[0, 0] * pc[0] / pc[2] + K[0, 2])), int(round(K[1, 1] * pc[1] / pc[2] + K[1, 2]))
    assert c.instance[v2, u2] == 4
    assert np.allclose(lighting.shade(scene, c, ao)[v2, u2], lighting.shade(_shadow_scene(True, False), c, ao)[v2, u2],
                       rtol=0.02)


def test_ambient_occlusion_darkens_a_corner_not_a_flat_wall():
    size = (60, 80)
    K = synth.kinect_intrinsics(size)
    scene = _shadow_scene(False, False)
    c = synth.cast(scene, K, size)
    ao = lighting.ambient_occlusion(c.depth, np.stack(c.n, -1), c.xu, c.yv)
    assert ao.min() >= 0 and ao.max() <= 1
    crease = np.zeros(size, bool)  # pixels next to the floor / far wall line
    crease[:-1] |= (c.instance[:-1] != c.instance[1:])
    wall = c.instance == 1
    assert ao[crease].mean() < ao[wall & ~crease].mean() - 0.02


# ---------------------------------------------------------------------------------------------- rooms, camera
def test_room_types_hold_their_furniture_and_the_camera_is_held_like_nyud():
    want = {"bedroom": "bed", "bathroom": "toilet", "kitchen": "counter", "living room": "sofa",
            "classroom": "whiteboard", "office": "desk", "dining room": "table"}
    for room_type, label in want.items():
        hits = sum(CLASS_ID[label] in rooms.sample_room(np.random.default_rng(s), room_type).labels for s in range(6))
        assert hits >= 3, (room_type, label, hits)
    seen = set()
    for s in range(60):
        scene = rooms.sample_room(np.random.default_rng(100 + s))
        seen |= set(scene.labels)
        fwd, down = scene.R_wc[:, 2], scene.R_wc[:, 1]
        assert 1.0 <= scene.cam_pos[2] <= 1.7
        pitch = math.degrees(math.asin(fwd[2]))
        assert -30.0 - 1e-6 <= pitch <= 10.0 + 1e-6
        right = scene.R_wc[:, 0]
        assert abs(math.degrees(math.asin(right[2]))) <= 6.5  # roll
        assert all(0 <= lt.position[2] <= scene.room[2] for lt in scene.lights)
    frequent = ["cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture", "counter",
                "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat", "clothes", "books",
                "refridgerator", "television", "paper", "towel", "box", "whiteboard", "person", "night stand", "toilet",
                "sink", "lamp", "bathtub", "bag"]
    missing = [c for c in frequent if CLASS_ID[c] not in seen]
    assert not missing, missing


# ---------------------------------------------------------------------------------------------- files, CLI, errors
@pytest.mark.timeout(180)
def test_nyud_rooms_build_for_many_seeds():
    # frame 1645 of the seed-0 training set once stopped a 2200-frame run: a plant lower than it is wide asked
    # rng.uniform for an empty range. Building rooms is cheap (~6 ms); rendering is not needed to find such errors.
    for i in [1645, *range(300)]:
        room = rooms.sample_room(np.random.default_rng(synth.frame_seed(0, i)))
        assert room.parts, i


def test_nyud_dataset_files_cli_and_bad_input(tmp_path):
    s1 = synth.write_dataset(tmp_path / "w1", 2, seed=4, size=(24, 32), workers=1, profile="nyud")
    synth.write_dataset(tmp_path / "w2", 2, seed=4, size=(24, 32), workers=2, profile="nyud")
    read = lambda root: {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    assert read(tmp_path / "w1") == read(tmp_path / "w2")  # textures made per process are the same everywhere
    assert s1["profile"] == "nyud"
    cam = json.loads((tmp_path / "w1" / "camera.json").read_text())
    assert cam["profile"] == "nyud" and cam["seed"] == 4

    assert synth.main(["--out", str(tmp_path / "cli"), "--num", "1", "--size", "24x32", "--workers", "1",
                       "--profile", "nyud"]) == 0
    assert json.loads((tmp_path / "cli" / "camera.json").read_text())["profile"] == "nyud"
    with pytest.raises(SystemExit):
        synth.main(["--out", str(tmp_path / "x"), "--num", "1", "--profile", "photoreal"])
    with pytest.raises(ValueError, match="profile"):
        synth.render_scene(0, (24, 32), profile="photoreal")
    with pytest.raises(ValueError, match="profile"):
        synth.write_dataset(tmp_path / "y", 1, size=(24, 32), profile="NYUD")
    with pytest.raises(ValueError, match="room type"):
        rooms.sample_room(np.random.default_rng(0), "garage")
    with pytest.raises(ValueError, match="texture pattern"):
        tex_material(np.random.default_rng(0), [0], ["velvet"])
