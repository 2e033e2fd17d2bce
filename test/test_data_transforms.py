"""Transform building blocks: padding, ground-truth resampling, photometric distortion, layouts, restoring."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlsi_core.data.transforms import (EvalTransform, TrainTransform, fit_to, hflip_target, pad_to,
                                        photometric_distortion, resize_target, restore_prediction, target_layout,
                                        to_tensors, zoom_target)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_target_layout_comes_from_the_registry():
    assert target_layout("semseg") == "index" and target_layout("human_parts") == "index"
    assert target_layout("sal") == "index"  # 2-way softmax
    assert target_layout("edge") == "dense" and target_layout("depth") == "dense" and target_layout("normals") == "dense"


def test_pad_to_centres_and_fills():
    a = np.arange(6, dtype=np.uint8).reshape(2, 3)
    out, (top, left) = pad_to(a, (5, 6), 255)
    assert out.shape == (5, 6) and (top, left) == (1, 1)
    assert np.array_equal(out[1:3, 1:4], a) and (out == 255).sum() == 30 - 6
    same, off = pad_to(a, (2, 3), 0)
    assert same is a and off == (0, 0)


def test_nearest_resize_of_labels_never_invents_values():
    rng = np.random.default_rng(0)
    lab = rng.choice(np.array([0, 3, 255], np.uint8), size=(17, 23))
    out = resize_target("semseg", lab, (40, 31))
    assert out.shape == (40, 31) and set(np.unique(out)) <= {0, 3, 255}
    d = rng.uniform(1, 5, (17, 23)).astype(np.float32)
    assert set(np.unique(resize_target("depth", d, (9, 11)))) <= set(np.unique(d))  # nearest by default


def test_validity_weighted_bilinear_keeps_invalid_out_and_normals_unit():
    d = np.full((8, 8), 2.0, np.float32)
    d[:, 4:] = 0.0  # invalid half
    out = resize_target("depth", d, (16, 16), dense_interpolation="bilinear")
    valid = out > 0
    assert np.allclose(out[valid], 2.0)  # no blending with the invalid zeros
    assert valid[:, :7].all() and not valid[:, 9:].any()
    n = np.zeros((8, 8, 3), np.float32)
    n[:, :4] = (1, 0, 0)
    n[:, 4:] = (0, 0, -1)
    nb = resize_target("normals", n, (13, 13), dense_interpolation="bilinear")
    assert np.allclose(np.linalg.norm(nb, axis=-1), 1.0, atol=1e-5)


def test_zoom_and_flip_rules():
    d = np.full((2, 2), 3.0, np.float32)
    assert np.allclose(zoom_target("depth", d, 1.5), 2.0)
    lab = np.ones((2, 2), np.uint8)
    assert zoom_target("semseg", lab, 1.5) is lab
    n = np.array([[[0.6, 0.0, -0.8], [0.0, 1.0, 0.0]]], np.float32)
    f = hflip_target("normals", n)
    assert np.allclose(f[0, 0], [0.0, 1.0, 0.0]) and np.allclose(f[0, 1], [-0.6, 0.0, -0.8])
    e = np.array([[0, 1]], np.uint8)
    assert np.array_equal(hflip_target("edge", e), [[1, 0]])


def test_photometric_distortion_is_seeded_and_keeps_format():
    img = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    outs = [photometric_distortion(img, np.random.default_rng(s)) for s in range(8)]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    assert any(not np.array_equal(o, img) for o in outs)
    assert np.array_equal(outs[3], photometric_distortion(img, np.random.default_rng(3)))


def test_crop_prefers_crops_where_no_class_dominates():
    lab = np.zeros((64, 64), np.uint8)
    lab[40:, :] = np.where(np.arange(64) % 2, 1, 2)[None]  # a varied strip at the bottom
    img = np.zeros((64, 64, 3), np.uint8)

    def share_ok(ratio: float) -> float:
        tf = TrainTransform((24, 24), MEAN, STD, scale_range=(1.0, 1.0), hflip=False, photometric=False,
                            cat_max_ratio=ratio)
        ok = 0
        for s in range(30):
            _, tgt, _ = tf(img, {"semseg": lab}, np.random.default_rng(s))
            counts = np.bincount(tgt["semseg"].ravel())
            ok += counts.max() / counts.sum() < 0.75
        return ok / 30

    assert share_ok(0.75) > share_ok(1.0) + 0.3


def test_fit_and_eval_transform():
    img = np.zeros((100, 50, 3), np.uint8)
    out, tg, s = fit_to(img, {"semseg": np.zeros((100, 50), np.uint8)}, (64, 64))
    assert s == pytest.approx(0.64) and out.shape == (64, 32, 3) and tg["semseg"].shape == (64, 32)
    ev = EvalTransform((64, 64), MEAN, STD)
    x, t, meta = ev(img, {"depth": np.ones((100, 50), np.float32)})
    assert x.shape == (64, 64, 3) and meta["valid_box"] == (0, 16, 64, 48) and meta["scale"] == pytest.approx(0.64)
    assert np.allclose(t["depth"][:, 16:48], 1 / 0.64) and np.all(t["depth"][:, :16] == 0)
    # the image is normalised: a mean-coloured pixel becomes 0
    grey = np.full((4, 4, 3), np.round(np.array(MEAN) * 255), np.uint8)
    xg, _, _ = ev(grey, {})
    assert np.abs(xg).max() < 0.02


def test_to_tensors_and_restore_prediction():
    t = to_tensors(np.zeros((4, 6, 3), np.float32), {"semseg": np.ones((4, 6), np.uint8),
                                                        "normals": np.zeros((4, 6, 3), np.float32),
                                                        "edge": np.zeros((4, 6), np.uint8)})
    assert t["image"].shape == (3, 4, 6) and t["semseg"].dtype == torch.int64
    assert t["normals"].shape == (3, 4, 6) and t["edge"].shape == (1, 4, 6) and t["edge"].dtype == torch.float32
    meta = {"input_size": (8, 8), "valid_box": (2, 0, 6, 8), "orig_size": (8, 16), "scale": 0.5}
    lab = torch.zeros(8, 8, dtype=torch.int64)
    lab[2:6, 4:] = 7
    back = restore_prediction("semseg", lab, meta)
    assert back.shape == (8, 16) and back.dtype == np.int64
    assert np.all(back[:, 8:] == 7) and np.all(back[:, :8] == 0)
    n = torch.zeros(3, 8, 8)
    n[2] = -2.0
    nb = restore_prediction("normals", n, meta)
    assert nb.shape == (8, 16, 3) and np.allclose(nb[..., 2], -1.0)
    d = restore_prediction("depth", torch.full((8, 8), 4.0), meta)
    assert np.allclose(d, 2.0)  # 4 m predicted on the half-size input = 2 m
    assert np.allclose(restore_prediction("depth", torch.full((8, 8), 4.0), meta, undo_zoom=False), 4.0)
    with pytest.raises(ValueError, match="expected the input size"):
        restore_prediction("semseg", torch.zeros(5, 5), meta)
