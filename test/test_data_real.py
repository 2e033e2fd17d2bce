"""The NYUD-MT loader on real NYUDv2 frames (../shared/data/nyud_real_samples), converted to the NYUD-MT layout."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mtlsi_core.config import config_from_dict
from mtlsi_core.data import build_dataset

pytestmark = pytest.mark.real_data

FRAMES = {"433": "drsleep_three_{}000433.png", "464": "drsleep_joint_{}000464.png"}


def _label_edges(labels: np.ndarray) -> np.ndarray:
    e = np.zeros(labels.shape, np.uint8)
    e[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    e[1:, :] |= labels[1:, :] != labels[:-1, :]
    return e


@pytest.fixture(scope="module")
def nyud_root(real_samples, tmp_path_factory) -> Path:
    """A two-frame NYUD-MT folder built from the real samples (converted, in a temporary folder)."""
    src = real_samples / "multitask"
    root = tmp_path_factory.mktemp("nyud_real")
    for folder in ("images", "depth", "normals", "edge", "segmentation", "gt_sets"):
        (root / folder).mkdir()
    for sid, pattern in FRAMES.items():
        rgb = cv2.imread(str(src / pattern.format("")), cv2.IMREAD_COLOR)
        cv2.imwrite(str(root / "images" / f"{sid}.jpg"), rgb, [cv2.IMWRITE_JPEG_QUALITY, 95])
        depth = cv2.imread(str(src / pattern.format("depth_gt_")), cv2.IMREAD_UNCHANGED)
        np.save(root / "depth" / f"{sid}.npy", depth.astype(np.float32) / 5000.0)  # uint16 / 5000 = metres
        seg = cv2.imread(str(src / pattern.format("segm_gt_")), cv2.IMREAD_UNCHANGED)  # 0..39, 255 ignore
        nyud_mt = np.where(seg == 255, 0, seg.astype(np.int32) + 1).astype(np.uint8)  # 1..40, 0 unlabelled
        cv2.imwrite(str(root / "segmentation" / f"{sid}.png"), nyud_mt)
        cv2.imwrite(str(root / "edge" / f"{sid}.png"), _label_edges(seg) * 255)
        normals = src / pattern.format("norm_gt_")
        if normals.is_file():
            (root / "normals" / f"{sid}.png").write_bytes(normals.read_bytes())
    (root / "gt_sets" / "val.txt").write_text("433\n464\n")
    (root / "gt_sets" / "normals.txt").write_text("433\n")
    return root


def _cfg(tasks: list[str], input_size=(448, 576)):
    return config_from_dict({"name": "real", "data": {"dataset": "nyud", "tasks": tasks, "input_size": list(input_size)},
                             "model": {"backbone": {"name": "efficientnet_lite0"}}})


def test_real_frames_load_with_nyud_conventions(nyud_root, real_samples):
    ds = build_dataset(_cfg(["semseg", "depth", "edge"]), "val", root=str(nyud_root))
    assert len(ds) == 2
    src = real_samples / "multitask"
    for i, (sid, pattern) in enumerate(FRAMES.items()):
        raw = ds.load_raw(i)
        assert raw["image"].shape == (480, 640, 3) and raw["image"].dtype == np.uint8
        seg = cv2.imread(str(src / pattern.format("segm_gt_")), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(raw["semseg"], seg)  # back to 0..39 with 255 = ignore
        depth = cv2.imread(str(src / pattern.format("depth_gt_")), cv2.IMREAD_UNCHANGED)
        assert np.allclose(raw["depth"], depth / 5000.0, atol=1e-6)
        assert (raw["depth"] == 0).mean() > 0.0  # invalid pixels stay 0
        assert np.array_equal(raw["edge"], _label_edges(seg))


def test_real_normals_png_decoding(nyud_root, real_samples):
    ds = build_dataset(_cfg(["normals"]), "normals", root=str(nyud_root))
    raw = ds.load_raw(0)["normals"]
    png = cv2.cvtColor(cv2.imread(str(real_samples / "multitask" / FRAMES["433"].format("norm_gt_"))), cv2.COLOR_BGR2RGB)
    grey = np.all(png == 127, axis=-1)  # "no normal" pixels of this encoding
    assert grey.sum() > 1000
    assert np.all(raw[grey] == 0)
    norm = np.linalg.norm(raw, axis=-1)
    assert np.allclose(norm[~grey & (norm > 0)], 1.0, atol=1e-5)
    enc = png.astype(np.float32) * 2 / 255 - 1
    # stored as (right, away, up); the loader rotates into the optical frame (right, down, forward)
    optical = np.stack([enc[..., 0], -enc[..., 2], enc[..., 1]], axis=-1)
    valid = norm > 0
    cos = np.sum(raw[valid] * optical[valid], axis=-1) / np.linalg.norm(optical[valid], axis=-1)
    assert cos.min() > 0.9999  # same direction as encoded, rotated


def test_real_normals_are_in_the_optical_frame(nyud_root, real_samples):
    """Physical check of the rotation: the floor faces up (-y optical), walls face the camera (-z optical)."""
    ds = build_dataset(_cfg(["semseg", "normals"]), "normals", root=str(nyud_root))
    raw = ds.load_raw(0)
    valid = np.linalg.norm(raw["normals"], axis=-1) > 0
    floor = np.median(raw["normals"][(raw["semseg"] == 1) & valid], axis=0)  # NYUD class 1 (0-based) = floor
    wall = np.median(raw["normals"][(raw["semseg"] == 0) & valid], axis=0)  # class 0 = wall
    assert floor[1] < -0.9, floor
    assert wall[2] < -0.5, wall


def test_real_frames_through_train_and_eval_transforms(nyud_root):
    cfg = _cfg(["semseg", "depth", "edge"])
    ev = build_dataset(cfg, "val", root=str(nyud_root))
    s = ev[1]
    assert s["image"].shape == (3, 448, 576)
    assert s["meta"]["scale"] == pytest.approx(0.9) and s["meta"]["valid_box"] == (8, 0, 440, 576)
    assert torch.all(s["semseg"][:8] == 255) and torch.all(s["depth"][0, :8] == 0)
    tr = build_dataset(cfg, "val", root=str(nyud_root), train=True)
    torch.manual_seed(0)
    for _ in range(3):
        t = tr[0]
        assert t["image"].shape == (3, 448, 576) and t["semseg"].shape == (448, 576)
        assert torch.isfinite(t["image"]).all()
