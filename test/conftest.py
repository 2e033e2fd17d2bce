"""Shared pytest fixtures. Area-specific fixtures live beside their tests (test_<area>_*.py)."""
from __future__ import annotations

import os
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
