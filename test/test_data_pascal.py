"""The PASCAL-Context loader on a tiny fake folder in the InvPT / ASTMT layout."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import torch

from mtlsi_core.config import config_from_dict
from mtlsi_core.data import DatasetError, PascalContext, build_dataset
from mtlsi_core.data.pascal import NORMALS_VALID_CONTEXT_IDS

TASKS = ["semseg", "human_parts", "sal", "normals", "edge"]
PERSON, NO_PERSON = "2008_000002", "2008_000003"
SHAPES = {PERSON: (40, 50), NO_PERSON: (36, 44)}
WALL, AEROPLANE, PERSON_CTX = 440, 2, 284  # PASCAL-Context ids: wall and person have normals, aeroplane not
PART_DT = [("part_name", "O"), ("mask", "O")]
OBJ_DT = [("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")]


def _mask(shape, ys, xs) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    m[ys, xs] = 1
    return m


def _anno(objects: list[tuple[str, int, np.ndarray, list[tuple[str, np.ndarray]]]]) -> dict:
    objs = np.zeros((len(objects),), dtype=OBJ_DT)
    for i, (name, ind, mask, parts) in enumerate(objects):
        p = np.zeros((len(parts),), dtype=PART_DT)
        for j, part in enumerate(parts):
            p[j] = part
        objs[i] = (name, ind, mask, p)
    return {"anno": {"imname": "x", "objects": objs}}


def _normals_png(shape) -> np.ndarray:
    rng = np.random.default_rng(0)
    n = rng.normal(size=shape + (3,))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return np.round((n + 1) * 127.5).astype(np.uint8)


def _write(root: Path) -> None:
    for d in ("JPEGImages", "ImageSets/Context", "semseg/VOC12", "semseg/pascal-context", "human_parts",
              "normals_distill", "sal_distill", "pascal-context/trainval"):
        (root / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for sid, (h, w) in SHAPES.items():
        cv2.imwrite(str(root / "JPEGImages" / f"{sid}.jpg"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        seg = np.zeros((h, w), np.uint8)
        seg[5:30, 10:25] = 15
        seg[20:30, 30:40] = 12
        seg[0, :] = 255
        folder = "pascal-context" if sid == PERSON else "VOC12"
        cv2.imwrite(str(root / "semseg" / folder / f"{sid}.png"), seg)
        ctx = np.full((h, w), WALL, np.uint16)
        ctx[:, w // 2:] = AEROPLANE
        ctx[5:30, 10:25] = PERSON_CTX
        scipy.io.savemat(str(root / "pascal-context" / "trainval" / f"{sid}.mat"), {"LabelMap": ctx})
        (root / "normals_distill" / f"{sid}.png").write_bytes(cv2.imencode(".png", _normals_png((h, w))[:, :, ::-1])[1].tobytes())
        sal = np.full((h, w), 100, np.uint8)
        sal[5:30, 10:25] = 200
        cv2.imwrite(str(root / "sal_distill" / f"{sid}.png"), sal)
    h, w = SHAPES[PERSON]
    person = _mask((h, w), slice(5, 30), slice(10, 25))
    parts = [("head", _mask((h, w), slice(5, 10), slice(12, 20))), ("torso", _mask((h, w), slice(10, 20), slice(12, 22))),
             ("luarm", _mask((h, w), slice(10, 15), slice(22, 25))), ("rfoot", _mask((h, w), slice(27, 30), slice(12, 15)))]
    dog = _mask((h, w), slice(20, 30), slice(30, 40))
    scipy.io.savemat(str(root / "human_parts" / f"{PERSON}.mat"),
                     _anno([("person", 15, person, parts), ("dog", 12, dog, [])]))
    h, w = SHAPES[NO_PERSON]
    scipy.io.savemat(str(root / "human_parts" / f"{NO_PERSON}.mat"),
                     _anno([("dog", 12, _mask((h, w), slice(20, 30), slice(30, 40)), [])]))
    (root / "ImageSets" / "Context" / "train.txt").write_text(f"{PERSON}\n{NO_PERSON}\n")
    (root / "ImageSets" / "Context" / "val.txt").write_text(f"{NO_PERSON}\n")


@pytest.fixture(scope="module")
def pascal_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pascal") / "PASCAL_MT"
    _write(root)
    return root


@pytest.fixture()
def copy_root(pascal_root, writable_copy) -> Path:
    return writable_copy(pascal_root)


def _cfg(tasks=TASKS, input_size=(64, 64)):
    return config_from_dict({"name": "pascal-test", "data": {"dataset": "pascal", "tasks": tasks, "input_size": list(input_size)},
                             "model": {"backbone": {"name": "efficientnet_lite0"}}})


def test_raw_ground_truth(pascal_root):
    ds = build_dataset(_cfg(), "train", root=str(pascal_root))
    assert isinstance(ds, PascalContext) and ds.ids == [PERSON, NO_PERSON]
    raw = ds.load_raw(0)
    h, w = SHAPES[PERSON]
    assert raw["image"].shape == (h, w, 3)
    seg = cv2.imread(str(pascal_root / "semseg" / "pascal-context" / f"{PERSON}.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(raw["semseg"], seg)
    hp = raw["human_parts"]
    assert hp.dtype == np.uint8 and set(np.unique(hp).tolist()) == {0, 1, 2, 3, 6}
    assert np.all(hp[5:10, 12:20] == 1) and np.all(hp[10:20, 12:22] == 2) and np.all(hp[10:15, 22:25] == 3)
    assert np.all(hp[27:30, 12:15] == 6) and np.all(hp[20:30, 30:40] == 0)  # the dog is background
    assert set(np.unique(raw["sal"]).tolist()) == {0, 1} and np.all(raw["sal"][5:30, 10:25] == 1)
    n = raw["normals"]
    assert np.all(n[:, 25:] == 0)  # aeroplane (no NYUD class): invalid
    norm = np.linalg.norm(n[:, : w // 2], axis=-1)
    assert np.allclose(norm, 1.0, atol=1e-5)  # wall and person: valid unit vectors
    enc = _normals_png((h, w)).astype(np.float32) * 2 / 255 - 1
    cos = np.sum(n[:, :w // 2] * enc[:, :w // 2], -1) / np.linalg.norm(enc[:, :w // 2], axis=-1)
    assert cos.min() > 0.9999
    assert WALL in NORMALS_VALID_CONTEXT_IDS and AEROPLANE not in NORMALS_VALID_CONTEXT_IDS


def test_edges_are_thin_label_boundaries(pascal_root):
    ds = build_dataset(_cfg(["edge"]), "train", root=str(pascal_root))
    e = ds.load_raw(0)["edge"]
    ctx = scipy.io.loadmat(str(pascal_root / "pascal-context" / "trainval" / f"{PERSON}.mat"))["LabelMap"].astype(int)
    near = np.zeros(ctx.shape, bool)
    near[:, 1:] |= ctx[:, 1:] != ctx[:, :-1]
    near[:, :-1] |= ctx[:, 1:] != ctx[:, :-1]
    near[1:] |= ctx[1:] != ctx[:-1]
    near[:-1] |= ctx[1:] != ctx[:-1]
    assert e.dtype == np.uint8 and e.sum() > 50
    assert np.all(near[e.astype(bool)])  # only on label changes
    # every boundary is found: each boundary pixel pair has an edge pixel within one pixel
    dil = cv2.dilate(e, np.ones((3, 3), np.uint8)).astype(bool)
    assert dil[near].mean() > 0.95
    assert cv2.erode(e, np.ones((2, 2), np.uint8)).sum() == 0  # thinned: no 2x2 block


def test_image_without_people_ignores_human_parts(pascal_root):
    ds = build_dataset(_cfg(), "val", root=str(pascal_root))
    raw = ds.load_raw(0)
    assert np.all(raw["human_parts"] == 255)
    s = ds[0]
    assert torch.all(s["human_parts"] == 255)
    seg = cv2.imread(str(pascal_root / "semseg" / "VOC12" / f"{NO_PERSON}.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(raw["semseg"], seg)  # VOC12 source


def test_samples_are_padded_to_the_input_size(pascal_root):
    ds = build_dataset(_cfg(), "train", root=str(pascal_root), train=False)
    s = ds[0]
    assert s["image"].shape == (3, 64, 64)
    assert s["human_parts"].dtype == torch.int64 and s["sal"].dtype == torch.int64
    assert s["edge"].shape == (1, 64, 64) and s["normals"].shape == (3, 64, 64)
    top, left, bottom, right = s["meta"]["valid_box"]
    assert (bottom - top, right - left) == SHAPES[PERSON] and s["meta"]["scale"] == 1.0
    for t, ign in (("semseg", 255), ("human_parts", 255), ("sal", 255)):
        assert torch.all(s[t][:top] == ign) and torch.all(s[t][:, :left] == ign)
    assert torch.all(s["edge"][0, :top] == 255) and torch.all(s["normals"][:, :top] == 0)
    tr = build_dataset(_cfg(), "train", root=str(pascal_root))
    torch.manual_seed(1)
    t = tr[1]
    assert t["image"].shape == (3, 64, 64) and torch.all(t["human_parts"] == 255)


def test_errors_name_the_file(copy_root):
    seg = copy_root / "semseg" / "pascal-context" / f"{PERSON}.png"
    bad = cv2.imread(str(seg), cv2.IMREAD_UNCHANGED)
    bad[3, 3] = 30
    cv2.imwrite(str(seg), bad)
    ds = build_dataset(_cfg(), "train", root=str(copy_root))
    with pytest.raises(DatasetError, match=rf"{PERSON}.png holds value\(s\) \[30\] outside the class range \(0..20, 255\)"):
        ds.load_raw(0)
    bad[3, 3] = 0
    cv2.imwrite(str(seg), bad)

    h, w = SHAPES[PERSON]
    scipy.io.savemat(str(copy_root / "human_parts" / f"{PERSON}.mat"),
                     _anno([("person", 15, _mask((h, w), 1, 1), [("tail", _mask((h, w), 1, 1))])]))
    with pytest.raises(DatasetError, match=rf"human_parts/{PERSON}.mat: unknown human part 'tail'"):
        ds.load_raw(0)

    scipy.io.savemat(str(copy_root / "pascal-context" / "trainval" / f"{NO_PERSON}.mat"),
                     {"LabelMap": np.ones((10, 10), np.uint16)})
    with pytest.raises(DatasetError, match=rf"size mismatch: .*trainval/{NO_PERSON}.mat is 10x10"):
        ds.load_raw(1)

    (copy_root / "sal_distill" / f"{NO_PERSON}.png").unlink()
    with pytest.raises(DatasetError, match=rf"sal file not found: .*sal_distill/{NO_PERSON}.png"):
        build_dataset(_cfg(), "train", root=str(copy_root))
    shutil.rmtree(copy_root / "human_parts")
    with pytest.raises(DatasetError, match=r"human_parts folder not found: .*copy/human_parts"):
        build_dataset(_cfg(), "train", root=str(copy_root))
    with pytest.raises(DatasetError, match=r"split file not found: .*ImageSets/Context/test.txt"):
        build_dataset(_cfg(["semseg"]), "test", root=str(copy_root))
