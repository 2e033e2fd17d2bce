"""Synthetic scene generator: determinism, exact ground truth, the NYUD-MT files it writes, its CLI."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from mtlsi_core.data import synth
from mtlsi_core.data.scene import CLASS_ID
from mtlsi_core.tasks import NYUD_CLASSES
from synth_helpers import expected_boundaries

SIZE = (120, 160)


@pytest.fixture(scope="module")
def frames() -> list[synth.SynthFrame]:
    return [synth.render_scene(s, SIZE) for s in range(4)]


def _rays(K: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones((h, w))], axis=-1)


def test_same_seed_same_frame_different_seed_different(frames):
    again = synth.render_scene(0, SIZE)
    for field in ("image", "semseg", "depth", "normals", "edge", "K", "instance"):
        assert np.array_equal(getattr(again, field), getattr(frames[0], field)), field
    assert not np.array_equal(frames[0].image, frames[1].image)
    assert not np.array_equal(frames[0].depth, frames[1].depth)


def test_types_shapes_and_ranges(frames):
    h, w = SIZE
    for f in frames:
        assert f.image.shape == (h, w, 3) and f.image.dtype == np.uint8
        assert f.semseg.shape == (h, w) and f.semseg.dtype == np.uint8
        assert f.depth.shape == (h, w) and f.depth.dtype == np.float32
        assert f.normals.shape == (h, w, 3) and f.normals.dtype == np.float32
        assert f.edge.shape == (h, w) and set(np.unique(f.edge)) <= {0, 1}
        labels = np.unique(f.semseg)
        assert np.all((labels < len(NYUD_CLASSES)) | (labels == 255))
        assert {CLASS_ID["wall"], CLASS_ID["floor"]} & set(labels.tolist())
        assert np.all(np.isfinite(f.depth)) and f.depth.min() > 0  # the room closes every ray
        assert f.depth.max() < 12.0
    # frames are not trivially uniform: several classes, texture inside the wall
    assert max(len(np.unique(f.semseg)) for f in frames) >= 5


def test_intrinsics_are_kinect_like_and_scaled():
    K = synth.kinect_intrinsics((480, 640))
    assert K[0, 0] == pytest.approx(518.86, abs=0.01) and K[1, 1] == pytest.approx(519.47, abs=0.01)
    assert K[0, 2] == pytest.approx(325.58, abs=0.01) and K[1, 2] == pytest.approx(253.74, abs=0.01)
    half = synth.kinect_intrinsics((240, 320))
    assert half[0, 0] == pytest.approx(K[0, 0] / 2)
    assert (half[0, 2] + 0.5) * 2 == pytest.approx(K[0, 2] + 0.5)  # pixel centres stay aligned
    f = synth.render_scene(1, (48, 64))
    assert np.allclose(f.K, synth.kinect_intrinsics((48, 64)))


def test_custom_intrinsics_are_used_and_checked():
    K = synth.kinect_intrinsics(SIZE)
    K[0, 0] *= 0.5
    K[1, 1] *= 0.5
    wide = synth.render_scene(2, SIZE, intrinsics=K)
    assert np.array_equal(wide.K, K)
    assert not np.array_equal(wide.depth, synth.render_scene(2, SIZE).depth)
    with pytest.raises(ValueError, match="intrinsics"):
        synth.render_scene(0, SIZE, intrinsics=np.eye(2))
    with pytest.raises(ValueError, match="size"):
        synth.render_scene(0, (4, 4))


def test_normals_are_unit_and_face_the_camera(frames):
    for f in frames:
        assert np.allclose(np.linalg.norm(f.normals, axis=-1), 1.0, atol=1e-4)
        facing = np.einsum("hwc,hwc->hw", f.normals, _rays(f.K, f.depth.shape))
        assert facing.max() <= 1e-5


def _fit_plane(points: np.ndarray) -> np.ndarray:
    c = points - points.mean(axis=0)
    return np.linalg.svd(c, full_matrices=False)[2][-1]


def test_backprojected_floor_is_a_plane_with_the_rendered_normal():
    checked = 0
    for seed in range(8):
        f = synth.render_scene(seed, SIZE)
        floor = f.instance == 4  # the room's floor face (object id 4 = face code "floor")
        if floor.sum() < 300:  # hidden behind furniture in this view
            continue
        assert np.all(f.semseg[floor] == CLASS_ID["floor"])
        pts = (_rays(f.K, f.depth.shape) * f.depth[..., None])[floor].astype(np.float64)
        n_fit = _fit_plane(pts)
        n_rendered = f.normals[floor]
        assert np.allclose(n_rendered, n_rendered[0], atol=1e-5)  # planar: one normal
        cos = abs(float(n_fit @ n_rendered[0]))
        assert np.degrees(np.arccos(min(cos, 1.0))) < 0.05
        assert np.abs((pts - pts.mean(0)) @ n_fit).max() < 1e-3  # metres off the plane
        # the camera stands 1.0 .. 1.8 m above the floor
        assert 1.0 - 1e-3 <= abs(float(pts.mean(0) @ n_rendered[0])) <= 1.8 + 1e-3
        checked += 1
    assert checked >= 3


def test_walls_are_planes_with_the_rendered_normal(frames):
    checked = 0
    for f in frames:
        for face in range(4):
            m = f.instance == face
            if m.sum() < 200:
                continue
            pts = (_rays(f.K, f.depth.shape) * f.depth[..., None])[m].astype(np.float64)
            n_fit = _fit_plane(pts)
            assert abs(float(n_fit @ f.normals[m][0])) > 0.99999
            checked += 1
    assert checked >= 2


def test_boundaries_lie_on_label_or_depth_changes(frames):
    for f in frames:
        edge = f.edge.astype(bool)
        assert np.array_equal(edge, expected_boundaries(f.instance, f.depth))
        # every label change is a boundary, and boundaries are thin (1-2 px)
        lab = f.semseg.astype(np.int16)
        lab_change = np.zeros_like(edge)
        lab_change[:, 1:] |= lab[:, 1:] != lab[:, :-1]
        assert np.all(edge[lab_change])
        assert 0.002 < edge.mean() < 0.2
        thick = cv2.erode(f.edge, np.ones((3, 3), np.uint8))
        assert thick.sum() < 0.1 * f.edge.sum()  # survivors of a 3x3 erosion: junctions, thin parts


def test_semseg_marks_some_unlabelled_clutter_over_many_scenes():
    seen = set()
    for s in range(40):
        seen |= set(np.unique(synth.render_scene(s, (30, 40)).semseg).tolist())
    assert 255 in seen
    assert len(seen - {255}) >= 15  # many NYUD classes appear


def _read_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.timeout(180)  # a deadlocked worker pool fails instead of hanging
def test_write_dataset_layout_and_worker_independence(tmp_path):
    one = synth.write_dataset(tmp_path / "w1", 5, seed=7, size=(48, 64), val_fraction=0.2, workers=1)
    synth.write_dataset(tmp_path / "w2", 5, seed=7, size=(48, 64), val_fraction=0.2, workers=2)
    a, b = _read_tree(tmp_path / "w1"), _read_tree(tmp_path / "w2")
    assert a == b  # frame i depends only on (seed, i)
    assert one["num"] == 5 and one["train"] == 4 and one["val"] == 1 and one["frames_per_second"] > 0
    root = tmp_path / "w1"
    assert (root / "gt_sets" / "train.txt").read_text().split() == ["000000", "000001", "000002", "000003"]
    assert (root / "gt_sets" / "val.txt").read_text().split() == ["000004"]
    for folder, ext in (("images", "png"), ("depth", "npy"), ("normals", "npy"), ("edge", "png"), ("segmentation", "png")):
        assert sorted(p.name for p in (root / folder).iterdir()) == [f"{i:06d}.{ext}" for i in range(5)]
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    cam = json.loads((root / "camera.json").read_text())
    assert cam["width"] == 64 and cam["height"] == 48 and cam["distortion_model"] == "none"
    assert np.allclose(cam["K"], synth.kinect_intrinsics((48, 64)))

    f = synth.render_scene(synth.frame_seed(7, 3), (48, 64))
    img = cv2.cvtColor(cv2.imread(str(root / "images" / "000003.png")), cv2.COLOR_BGR2RGB)
    assert np.array_equal(img, f.image)
    assert np.array_equal(np.load(root / "depth" / "000003.npy"), f.depth)
    assert np.array_equal(np.load(root / "normals" / "000003.npy"), f.normals)
    seg = cv2.imread(str(root / "segmentation" / "000003.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(np.where(seg == 0, 255, seg.astype(np.int16) - 1), f.semseg)
    edge = cv2.imread(str(root / "edge" / "000003.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(edge, f.edge * 255)


def test_write_dataset_resumes_an_interrupted_run(tmp_path, monkeypatch):
    root = tmp_path / "d"
    synth.write_dataset(root, 4, seed=3, size=(32, 40), val_fraction=0.25, workers=1)
    full = _read_tree(root)
    # a kill: frame 2 lost its label map (written last), the split files are not there yet
    (root / "segmentation" / "000002.png").unlink()
    for f in ("train.txt", "val.txt"):
        (root / "gt_sets" / f).unlink()
    rendered = []
    real = synth.render_scene
    monkeypatch.setattr(synth, "render_scene", lambda seed, *a, **k: rendered.append(seed) or real(seed, *a, **k))
    s = synth.write_dataset(root, 4, seed=3, size=(32, 40), val_fraction=0.25, workers=1)
    assert s["kept"] == 3 and s["rendered"] == 1 and rendered == [synth.frame_seed(3, 2)]
    assert _read_tree(root) == full
    # other settings (here the seed) render every frame again
    s = synth.write_dataset(root, 4, seed=4, size=(32, 40), val_fraction=0.25, workers=1)
    assert s["kept"] == 0 and s["rendered"] == 4 and _read_tree(root) != full


def test_write_dataset_train_val_counts_and_bad_arguments(tmp_path):
    s = synth.write_dataset(tmp_path / "d", num_train=3, num_val=2, seed=1, size=(32, 40), workers=1)
    assert (s["train"], s["val"]) == (3, 2)
    assert (tmp_path / "d" / "gt_sets" / "val.txt").read_text().split() == ["000003", "000004"]
    with pytest.raises(ValueError, match="num"):
        synth.write_dataset(tmp_path / "e", 0, size=(32, 40))
    with pytest.raises(ValueError, match="seed"):
        synth.write_dataset(tmp_path / "e", 2, seed=-1, size=(32, 40))
    with pytest.raises(ValueError, match="val_fraction"):
        synth.write_dataset(tmp_path / "e", 2, val_fraction=1.0, size=(32, 40))


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    f = synth.render_scene(0, (32, 40))
    real_fsync, calls = os.fsync, []

    def fsync_then_interrupt(fd):  # the second file is interrupted after its bytes were written
        calls.append(fd)
        if len(calls) == 3:  # file 1, its directory, file 2
            raise KeyboardInterrupt
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        synth.write_frame(tmp_path, "000000", f)
    leftovers = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert leftovers == ["images/000000.png"]


def test_cli_writes_a_dataset(tmp_path, capsys):
    rc = synth.main(["--out", str(tmp_path / "cli"), "--num", "3", "--seed", "2", "--size", "40x56", "--workers", "1"])
    assert rc == 0
    assert "wrote 3 frames" in capsys.readouterr().out
    img = cv2.imread(str(tmp_path / "cli" / "images" / "000000.png"))
    assert img.shape == (40, 56, 3)
    with pytest.raises(SystemExit):
        synth.main(["--out", str(tmp_path / "x"), "--num", "2", "--size", "40by56"])
    with pytest.raises(SystemExit):
        synth.main(["--out", str(tmp_path / "x"), "--num", "0"])


def test_room_closes_rays_parallel_to_walls():
    from mtlsi_core.data.raycast import room_intersect

    d = (np.array([[0.0, 1.0, 0.0, -0.5]], np.float32), np.array([[0.0, 0.0, 1.0, 0.0]], np.float32),
         np.array([[1.0, 0.0, 0.0, 0.0]], np.float32))
    t, face = room_intersect(np.array([1.0, 2.0, 1.5]), d, np.array([4.0, 5.0, 3.0]))
    assert np.allclose(t, [[1.5, 3.0, 3.0, 2.0]])  # ceiling, far wall x, wall y = Ly, wall x = 0
    assert face.tolist() == [[5, 1, 3, 0]]


def test_colour_alone_does_not_give_the_label():
    """A colour -> label lookup (majority label per 8x8x8 RGB bin) fitted on some scenes is a poor
    segmenter of others: classes share palettes, textures and shading."""
    frames = [synth.render_scene(s, (48, 64)) for s in range(40)]

    def bins(f):
        q = (f.image // 32).astype(np.int64)
        return (q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2]).ravel(), f.semseg.ravel().astype(np.int64)

    counts = np.zeros((512, 256), np.int64)
    for f in frames[:30]:
        b, lab = bins(f)
        np.add.at(counts, (b, lab), 1)
    counts[:, 255] = 0
    lookup = counts.argmax(axis=1)
    hits = total = majority = 0
    overall = counts.sum(axis=0).argmax()
    for f in frames[30:]:
        b, lab = bins(f)
        keep = lab != 255
        hits += int((lookup[b][keep] == lab[keep]).sum())
        majority += int((lab[keep] == overall).sum())
        total += int(keep.sum())
    acc, base = hits / total, majority / total
    assert acc < 0.65, f"colour predicts the label too well: {acc:.2f} (majority class alone: {base:.2f})"
