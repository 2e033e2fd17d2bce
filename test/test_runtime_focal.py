"""Metric depth for cameras other than the training camera: the runtime's focal-length (zoom) correction."""
from __future__ import annotations

import numpy as np
import pytest

from runtime_helpers import images, tiny_model

from mtlsi_core.runtime.torch_runtime import TorchRuntime


def _runtime(canonical_focal):
    model, cfg = tiny_model()
    return TorchRuntime(model, cfg.data.tasks, cfg.data.dataset, cfg.data.input_size, cfg.data.mean, cfg.data.std,
                        canonical_focal=canonical_focal)


def test_depth_scales_with_camera_focal_length():
    rt = _runtime(canonical_focal=80.0)
    imgs = images([(120, 160), (64, 96)])
    plain = rt.infer(imgs)
    # image 0: f = 100 px at width 160, network width 96 -> f at the network = 60 px -> zoom 60 / 80 = 0.75
    out = rt.infer(imgs, focal_lengths=[100.0, None])
    np.testing.assert_allclose(out[0]["depth"], plain[0]["depth"] * 0.75, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[1]["depth"], plain[1]["depth"])  # unknown focal length: as predicted
    for t in ("semseg", "normals", "edge"):  # zoom-independent tasks are untouched
        np.testing.assert_array_equal(out[0][t], plain[0][t])
    assert rt.zoom_factors(imgs, [100.0, None]) == pytest.approx([0.75, 1.0])


def test_models_without_canonical_focal_ignore_focal_lengths():
    rt = _runtime(canonical_focal=None)
    imgs = images([(120, 160)])
    np.testing.assert_array_equal(rt.infer(imgs, focal_lengths=[100.0])[0]["depth"], rt.infer(imgs)[0]["depth"])


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan")])
def test_bad_focal_lengths_are_errors(bad):
    rt = _runtime(canonical_focal=80.0)
    with pytest.raises(ValueError, match="focal length"):
        rt.infer(images([(64, 96)]), focal_lengths=[bad])
    with pytest.raises(ValueError, match="entries"):
        rt.infer(images([(64, 96)]), focal_lengths=[1.0, 2.0])
