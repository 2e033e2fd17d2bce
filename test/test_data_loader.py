"""The NYUD-MT loader on a small synthetic set: sample format, augmentation, eval mapping, workers, errors."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mtlsi_core.config import config_from_dict
from mtlsi_core.data import (NYUDMT, DatasetError, EvalTransform, TrainTransform, build_dataset, collate,
                             loader_context, restore_prediction, worker_init)
from mtlsi_core.data import synth
from mtlsi_core.tasks import get_task

TASKS = ["semseg", "depth", "normals", "edge"]
FRAME = (60, 80)


def cfg_dict(dataset: str = "synth", input_size=(64, 96), **augment) -> dict:
    return {
        "name": "data-test",
        "data": {"dataset": dataset, "tasks": TASKS, "input_size": list(input_size), "augment": augment},
        "model": {"backbone": {"name": "efficientnet_lite0"}},
    }


def make_cfg(dataset: str = "synth", input_size=(64, 96), **augment) -> object:
    return config_from_dict(cfg_dict(dataset, input_size, **augment))


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "set"
    synth.write_dataset(root, 4, seed=11, size=FRAME, val_fraction=0.25, workers=1)
    return root


@pytest.fixture()
def copy_root(synth_root, writable_copy) -> Path:
    return writable_copy(synth_root)


def test_train_sample_format(synth_root):
    torch.manual_seed(0)
    ds = build_dataset(make_cfg(), "train", root=str(synth_root))
    assert isinstance(ds, NYUDMT) and len(ds) == 3
    s = ds[0]
    assert s["image"].shape == (3, 64, 96) and s["image"].dtype == torch.float32
    assert s["semseg"].shape == (64, 96) and s["semseg"].dtype == torch.int64
    assert s["depth"].shape == (1, 64, 96) and s["depth"].dtype == torch.float32
    assert s["normals"].shape == (3, 64, 96) and s["normals"].dtype == torch.float32
    assert s["edge"].shape == (1, 64, 96) and s["edge"].dtype == torch.float32
    meta = s["meta"]
    assert meta["name"] == "000000" and meta["orig_size"] == FRAME
    top, left, bottom, right = meta["valid_box"]
    assert 0 <= top < bottom <= 64 and 0 <= left < right <= 96
    labels = set(torch.unique(s["semseg"]).tolist())
    assert labels <= set(range(40)) | {255}
    assert set(torch.unique(s["edge"]).tolist()) <= {0.0, 1.0, 255.0}


def test_eval_sample_is_downscaled_to_fit_and_padded_with_ignore_values(synth_root):
    ds = build_dataset(make_cfg(input_size=(64, 64)), "val", root=str(synth_root))
    assert ds.ids == ["000003"]
    a, b = ds[0], ds[0]
    for k in ("image", *TASKS):
        assert torch.equal(a[k], b[k])  # no randomness
    meta = a["meta"]
    scale = 64 / 80  # 60x80 -> 48x64
    assert meta["scale"] == pytest.approx(scale)
    assert meta["valid_box"] == (8, 0, 56, 64)
    pad = torch.zeros(64, dtype=torch.bool)
    pad[:8] = True
    pad[56:] = True
    for t in TASKS:
        ign = get_task(t).ignore_value
        x = a[t] if a[t].ndim == 2 else a[t].permute(1, 2, 0)
        assert torch.all(x[pad] == ign), t
        assert not torch.all(x[~pad] == ign), t
    assert torch.all(a["image"][:, pad] == 0)
    # depth of a downscaled sample follows the zoom convention (depth / scale) ...
    raw = ds.load_raw(0)
    d = a["depth"][0, 8:56].numpy()
    assert np.isclose(np.median(d), np.median(raw["depth"]) / scale, rtol=0.05)
    # ... and restore_prediction maps it back onto the original ground truth
    back = restore_prediction("depth", a["depth"][0], meta)
    assert back.shape == FRAME
    assert np.median(back / raw["depth"]) == pytest.approx(1.0, abs=0.02)  # resampling aside, no 1/scale bias
    seg = restore_prediction("semseg", a["semseg"], meta)
    assert seg.shape == FRAME and (seg == raw["semseg"]).mean() > 0.9
    nrm = restore_prediction("normals", a["normals"], meta)
    assert nrm.shape == FRAME + (3,)
    assert np.allclose(np.linalg.norm(nrm, axis=-1), 1.0, atol=1e-4)


def test_load_raw_gives_metric_ground_truth(synth_root):
    ds = build_dataset(make_cfg(), "train", root=str(synth_root))
    raw = ds.load_raw(1)
    f = synth.render_scene(synth.frame_seed(11, 1), FRAME)
    assert np.array_equal(raw["image"], f.image)
    assert raw["semseg"].dtype == np.uint8 and np.array_equal(raw["semseg"], f.semseg)
    assert np.array_equal(raw["depth"], f.depth)
    assert np.allclose(raw["normals"], f.normals, atol=1e-6)
    assert raw["edge"].dtype == np.uint8 and np.array_equal(raw["edge"], f.edge)


def _flip_sample(image, targets, transform, want_flip: bool):
    for seed in range(50):
        img, tgt, meta = transform(image.copy(), {k: v.copy() for k, v in targets.items()}, np.random.default_rng(seed))
        if meta["hflip"] == want_flip:
            return img, tgt, meta
    raise AssertionError("the flip never happened in 50 draws")


def test_hflip_mirrors_targets_and_negates_normals_x(synth_root):
    ds = build_dataset(make_cfg(), "train", root=str(synth_root))
    raw = ds.load_raw(0)
    image = raw.pop("image")
    tf = TrainTransform((64, 96), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), scale_range=(1.0, 1.0),
                        crop=False, photometric=False)
    img, tgt, meta = _flip_sample(image, raw, tf, True)
    top, left, bottom, right = meta["valid_box"]
    inner = (slice(top, bottom), slice(left, right))
    n = tgt["normals"][inner]
    assert np.array_equal(n[..., 0], -raw["normals"][:, ::-1, 0])
    assert np.array_equal(n[..., 1:], raw["normals"][:, ::-1, 1:])
    assert np.array_equal(tgt["semseg"][inner], raw["semseg"][:, ::-1])
    assert np.array_equal(tgt["depth"][inner], raw["depth"][:, ::-1])
    _, tgt2, _ = _flip_sample(image, raw, tf, False)
    assert np.array_equal(tgt2["normals"][inner], raw["normals"])


def test_scale_divides_depth(synth_root):
    ds = build_dataset(make_cfg(), "train", root=str(synth_root))
    raw = ds.load_raw(2)
    image = raw.pop("image")
    tf = TrainTransform((128, 160), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), scale_range=(2.0, 2.0),
                        crop=True, hflip=False, photometric=False)
    img, tgt, meta = tf(image, raw, np.random.default_rng(0))
    assert meta["aug_scale"] == 2.0
    top, left, bottom, right = meta["valid_box"]
    assert (bottom - top, right - left) == (120, 160)
    d = tgt["depth"][top:bottom, left:right]
    expected = np.repeat(np.repeat(raw["depth"], 2, axis=0), 2, axis=1) / 2.0  # nearest x2, then / scale
    assert np.allclose(d, expected, rtol=1e-6)
    lab = tgt["semseg"][top:bottom, left:right]
    assert np.array_equal(lab, np.repeat(np.repeat(raw["semseg"], 2, axis=0), 2, axis=1))


def test_random_crop_and_photometric_keep_targets_aligned(synth_root):
    ds = build_dataset(make_cfg(), "train", root=str(synth_root))
    raw = ds.load_raw(0)
    image = raw.pop("image")
    tf = TrainTransform((32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), scale_range=(1.0, 1.0), hflip=False,
                        photometric=True)
    seen = set()
    for seed in range(6):
        img, tgt, meta = tf(image, raw, np.random.default_rng(seed))
        assert img.shape == (32, 32, 3) and meta["valid_box"] == (0, 0, 32, 32)
        # find the crop: the depth crop identifies its position uniquely
        hits = [(y, x) for y in range(60 - 31) for x in range(80 - 31)
                if np.array_equal(raw["depth"][y:y + 32, x:x + 32], tgt["depth"])]
        assert len(hits) == 1
        y, x = hits[0]
        seen.add(hits[0])
        assert np.array_equal(tgt["semseg"], raw["semseg"][y:y + 32, x:x + 32])
        assert np.array_equal(tgt["normals"], raw["normals"][y:y + 32, x:x + 32])
    assert len(seen) > 1


def test_collate_and_dataloader_workers_and_pickle(synth_root):
    ds = build_dataset(make_cfg(), "train", root=str(synth_root))
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.ids == ds.ids
    batch = collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 64, 96) and batch["depth"].shape == (2, 1, 64, 96)
    assert [m["name"] for m in batch["meta"]] == ["000000", "000001"]
    loader = DataLoader(ds, batch_size=3, num_workers=1, collate_fn=collate, worker_init_fn=worker_init,
                        multiprocessing_context=loader_context(1))
    (b,) = list(loader)
    assert b["semseg"].shape == (3, 64, 96) and len(b["meta"]) == 3


def test_train_sampling_is_reproducible_with_torch_seed(synth_root):
    ds = build_dataset(make_cfg(), "train", root=str(synth_root))
    torch.manual_seed(5)
    a = ds[0]
    torch.manual_seed(5)
    b = ds[0]
    torch.manual_seed(6)
    c = ds[0]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["depth"], b["depth"])
    assert not torch.equal(a["image"], c["image"])


def test_nyud_and_synth_share_the_loader(synth_root):
    ds = build_dataset(make_cfg("nyud"), "val", root=str(synth_root))
    assert isinstance(ds, NYUDMT) and ds.dataset == "nyud" and len(ds) == 1
    assert isinstance(ds.transform, EvalTransform)
    assert isinstance(build_dataset(make_cfg("nyud"), "val", root=str(synth_root), train=True).transform, TrainTransform)


# -- errors: each names what was wrong and where ---------------------------------------------------------

def test_missing_root_and_no_root(tmp_path):
    with pytest.raises(DatasetError, match="nope"):
        build_dataset(make_cfg(), "train", root=str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="data.root"):
        build_dataset(make_cfg(), "train")


def test_missing_folder(copy_root):
    shutil.rmtree(copy_root / "normals")
    with pytest.raises(DatasetError, match=r"normals folder not found: .*copy/normals"):
        build_dataset(make_cfg(), "train", root=str(copy_root))


def test_missing_split_file(copy_root):
    with pytest.raises(DatasetError, match=r"split file not found: .*gt_sets/test.txt"):
        build_dataset(make_cfg(), "test", root=str(copy_root))
    (copy_root / "gt_sets" / "empty.txt").write_text("\n")
    with pytest.raises(DatasetError, match=r"empty.txt lists no samples"):
        build_dataset(make_cfg(), "empty", root=str(copy_root))


def test_missing_sample_file(copy_root):
    (copy_root / "images" / "000002.png").unlink()
    with pytest.raises(DatasetError, match=r"image file not found: .*images/000002.jpg or .*images/000002.png"):
        build_dataset(make_cfg(), "train", root=str(copy_root))
    (copy_root / "depth" / "000001.npy").unlink()
    with pytest.raises(DatasetError, match=r"depth file not found: .*depth/000001.npy"):
        build_dataset(make_cfg(), "train", root=str(copy_root))


def test_unreadable_image(copy_root):
    (copy_root / "images" / "000001.png").write_bytes(b"not a png at all")
    ds = build_dataset(make_cfg(), "train", root=str(copy_root))
    ds.load_raw(0)
    with pytest.raises(DatasetError, match=r"cannot read image .*images/000001.png"):
        ds.load_raw(1)
    (copy_root / "depth" / "000002.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DatasetError, match=r"cannot read depth .*depth/000002.npy"):
        ds[2]


def test_label_outside_class_range(copy_root):
    seg = cv2.imread(str(copy_root / "segmentation" / "000000.png"), cv2.IMREAD_UNCHANGED)
    seg[3, 3] = 57
    cv2.imwrite(str(copy_root / "segmentation" / "000000.png"), seg)
    ds = build_dataset(make_cfg(), "train", root=str(copy_root))
    with pytest.raises(DatasetError, match=r"segmentation/000000.png holds value\(s\) \[57\] outside the class range"):
        ds.load_raw(0)


def test_mismatched_sizes(copy_root):
    np.save(copy_root / "depth" / "000000.npy", np.ones((30, 40), np.float32))
    ds = build_dataset(make_cfg(), "train", root=str(copy_root))
    with pytest.raises(DatasetError, match=r"size mismatch: .*depth/000000.npy is 40x30 .* image .*images/000000.png is 80x60"):
        ds.load_raw(0)


def test_bad_values_are_rejected(copy_root):
    d = np.load(copy_root / "depth" / "000001.npy")
    d[0, 0] = -1.0
    np.save(copy_root / "depth" / "000001.npy", d)
    np.save(copy_root / "normals" / "000000.npy", np.ones((60, 80), np.float32))
    cv2.imwrite(str(copy_root / "edge" / "000002.png"), np.eye(60, 80, dtype=np.uint8))
    ds = build_dataset(make_cfg(), "train", root=str(copy_root))
    with pytest.raises(DatasetError, match=r"depth .*000001.npy holds negative values"):
        ds.load_raw(1)
    with pytest.raises(DatasetError, match=r"normals .*000000.npy must have shape \(H, W, 3\)"):
        ds.load_raw(0)
    with pytest.raises(DatasetError, match=r"edge map .*000002.png holds 0/1"):
        ds.load_raw(2)


def test_eval_samples_leave_the_global_rng_alone(synth_root):
    ds = build_dataset(make_cfg(), "val", root=str(synth_root))
    torch.manual_seed(3)
    ds[0]
    after = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(torch.rand(1), after)


_WORKERS_AFTER_CV2_POOL = """
import sys
import time
import cv2, numpy as np
from torch.utils.data import DataLoader
from mtlsi_core.config import config_from_dict
from mtlsi_core.data import build_dataset, collate, loader_context, worker_init

if __name__ == "__main__":
    cv2.setNumThreads(2)
    big = np.zeros((2000, 2000, 3), np.uint8)
    for _ in range(20):
        cv2.resize(big, (1500, 1500))
    time.sleep(1.0)                            # the pool's threads stop spinning and wait on its condition variable
    ds = build_dataset(config_from_dict({cfg!r}), "train", root={root!r})
    ctx = loader_context(1) if sys.argv[1] == "project" else None
    loader = DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate, worker_init_fn=worker_init,
                        multiprocessing_context=ctx)
    print(len(list(loader)), "batches")
"""


def test_dataloader_workers_survive_a_parent_with_a_running_opencv_pool(synth_root, tmp_path):
    """Regression: a DataLoader worker forked from a process whose OpenCV pool had run hung for ever in
    ``cv2.setNumThreads`` (worker_init). The project's workers start from a fork server instead."""
    import subprocess
    import sys

    script = tmp_path / "workers.py"
    script.write_text(_WORKERS_AFTER_CV2_POOL.format(cfg=cfg_dict(), root=str(synth_root)))
    out = subprocess.run([sys.executable, str(script), "project"], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "batches" in out.stdout
