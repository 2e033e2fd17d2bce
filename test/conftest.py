"""Shared pytest fixtures. Area-specific fixtures live beside their tests (test_<area>_*.py)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_SAMPLES = Path(os.environ.get("MTLSI_REAL_SAMPLES", REPO.parent / "shared" / "data" / "nyud_real_samples"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def real_samples() -> Path:
    """The real NYUDv2 frames of ../shared/data/nyud_real_samples; tests using it skip where it is absent."""
    if not (REAL_SAMPLES / "multitask").is_dir():
        pytest.skip(f"real NYUDv2 samples not found at {REAL_SAMPLES}")
    return REAL_SAMPLES


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: two OpenMP threads on a shared, oversubscribed 2-core runner are 10-30x
    slower than one. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """A tiny synthetic training set (6 train and 2 val frames of 64 x 96, seed 0), written once per session, for
    the tests that train the tiny config (test/configs/tiny.yaml). Tests read it and never change it."""
    from mtlsi_core.data.synth import write_dataset

    root = tmp_path_factory.mktemp("synth_train")
    write_dataset(root, num_train=6, num_val=2, seed=0, size=(64, 96), workers=1)
    return root


@pytest.fixture(scope="session")
def handheld_sequence():
    """A handheld synthetic sequence (seed 3, 10 frames at 10 Hz, 96 x 128) and its rendered frames, made once per
    session for the map tests; tests read them and never change them."""
    from mtlsi_core.data.sequence import SequenceSpec, make_sequence

    seq = make_sequence(SequenceSpec(seed=3, kind="handheld", frames=10, rate=10.0, size=(96, 128)))
    return seq, [seq.render(i) for i in range(len(seq))]


@pytest.fixture
def writable_copy(tmp_path):
    """``writable_copy(folder)``: a copy of ``folder`` under the test's tmp_path, for tests that damage a dataset."""

    def copy(src: Path) -> Path:
        dst = tmp_path / "copy"
        shutil.copytree(src, dst)
        return dst

    return copy
