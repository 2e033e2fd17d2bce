"""PhotoFolder: folders of unlabelled real photos (the target domain of sim-to-real adaptation, issue 20): listing,
subsets, broken files, clear errors, and samples as the networks take them. Every photo is made here, in tmp_path."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mtlsi_core.config import load_config
from mtlsi_core.data import DatasetError, PhotoFolder, collate
from mtlsi_core.data.photos import evenly_spaced, list_photos, random_resized_crop_box

TINY = Path(__file__).parent / "configs" / "tiny.yaml"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def photo(path: Path, color=(200, 120, 40), size=(30, 40)) -> Path:
    """A uniformly coloured RGB photo (written as BGR by OpenCV)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros(size + (3,), np.uint8)
    img[:] = color
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    photo(root / "kitchen" / "b.png")
    photo(root / "kitchen" / "a.PNG")
    photo(root / "bedroom" / "z.webp")
    photo(root / "bedroom" / "deep" / "c.png")
    photo(root / "a_top.jpeg", size=(20, 20))
    (root / "notes.txt").write_text("not a photo")
    photo(root / ".hidden" / "x.png")
    photo(root / "bedroom" / ".y.png")
    return root


def test_lists_photos_recursively_sorted_by_relative_path(folder):
    names = [p.relative_to(folder).as_posix() for p in list_photos(folder)]
    assert names == ["a_top.jpeg", "bedroom/deep/c.png", "bedroom/z.webp", "kitchen/a.PNG", "kitchen/b.png"]
    ds = PhotoFolder(folder)
    assert len(ds) == 5 and [ds.name(i) for i in range(5)] == names
    assert PhotoFolder(folder, max_images=2).files == [ds.files[0], ds.files[2]]  # spread, not the first two
    assert evenly_spaced(10, 3) == [0, 3, 6] and evenly_spaced(4, None) == [0, 1, 2, 3] == evenly_spaced(4, 9)
    with pytest.raises(ValueError, match="max_images"):
        PhotoFolder(folder, max_images=0)


def test_missing_empty_and_unreadable_folders_are_named(tmp_path):
    with pytest.raises(DatasetError, match=f"photo folder not found: {tmp_path / 'nope'}"):
        PhotoFolder(tmp_path / "nope")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match=f"no photos .* under {tmp_path / 'empty'}"):
        PhotoFolder(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"not a jpeg")
    ds = PhotoFolder(bad)
    with pytest.raises(DatasetError, match=f"none of the 1 photos under {bad} can be read"):
        ds[0]


def test_broken_photo_is_skipped_with_one_warning_naming_it(folder, caplog):
    broken = folder / "bedroom" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage, not a JPEG")
    ds = PhotoFolder(folder, input_size=(32, 32))
    i = [p.name for p in ds.files].index("broken.jpg")
    with caplog.at_level(logging.WARNING, logger="mtlsi_core.data.photos"):
        assert ds.read(i) is None
        sample = ds[i]  # the next readable photo stands in
        ds.image(i)
    lines = [r.getMessage() for r in caplog.records if str(broken) in r.getMessage()]
    assert len(lines) == 1 and "skipping unreadable photo" in lines[0], caplog.text
    assert torch.equal(sample["image"], ds[i + 1]["image"]) and sample["meta"]["index"] == i
    assert all(ds[k]["image"].shape == (3, 32, 32) for k in range(len(ds)))  # the rest stays usable


def test_samples_are_normalised_network_inputs(folder):
    cfg = load_config(TINY)
    ds = PhotoFolder.from_config(cfg.data, folder)
    s = ds[3]
    assert s["image"].shape == (3, 64, 96) and s["image"].dtype == torch.float32
    assert s["meta"] == {"name": "kitchen/a.PNG", "index": 3}
    want = (np.array([200, 120, 40]) / 255.0 - np.array(MEAN)) / np.array(STD)
    assert torch.allclose(s["image"].mean((1, 2)), torch.tensor(want, dtype=torch.float32), atol=1e-4)
    batch = next(iter(DataLoader(ds, batch_size=2, collate_fn=collate)))
    assert batch["image"].shape == (2, 3, 64, 96) and [m["index"] for m in batch["meta"]] == [0, 1]


def test_eval_crops_the_centre_to_the_input_aspect(tmp_path):
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, 20:60] = 255  # the centred 40x40 square is white, the sides black
    cv2.imwrite(str(tmp_path / "wide.png"), img)
    ds = PhotoFolder(tmp_path, input_size=(32, 32), mean=(0, 0, 0), std=(1, 1, 1))
    assert torch.allclose(ds[0]["image"], torch.ones(3, 32, 32))


def test_training_crops_are_random_but_seeded(tmp_path):
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "noise.png"), rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
    ds = PhotoFolder(tmp_path, input_size=(32, 48), train=True)
    torch.manual_seed(1)
    a = ds[0]["image"]
    torch.manual_seed(1)
    b = ds[0]["image"]
    c = ds[0]["image"]
    assert a.shape == (3, 32, 48) and torch.equal(a, b) and not torch.equal(a, c)
    for seed in range(50):
        y0, x0, h, w = random_resized_crop_box((60, 80), 1.5, np.random.default_rng(seed))
        assert 0 <= y0 and y0 + h <= 60 and 0 <= x0 and x0 + w <= 80 and h * w >= 0.25 * 60 * 80 - 80
