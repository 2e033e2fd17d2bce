"""Semantic 3D maps from per-frame depth, labels and camera poses, and their scores (pure numpy + Open3D, no ROS).

``tsdf.SemanticTSDF`` integrates depth (metres along the optical z axis) into an Open3D ``VoxelBlockGrid`` (TSDF +
weight + the class colour) and keeps per-voxel class-label votes on the same voxel grid (a sparse table keyed by the
voxel's integer coordinates, since Open3D integrates colours, not label histograms); ``extract`` gives the mesh
(vertex colour = class colour) and the labelled map points (its vertices, each with the majority label of its voxel).
``metrics`` scores a map against a ground-truth surface (accuracy, completeness, F-score, semantic accuracy),
``stability`` measures frame-to-frame flicker of depth and labels after warping with known poses, ``render`` draws
map pictures by numpy projection (no OpenGL), ``io`` writes PLY / npz files atomically. This package may touch
numpy, scipy, OpenCV, Open3D and files it is asked to write; nothing of ROS. Open3D is imported only through
``import_open3d()``, which preloads the libusb it links against (the wheel's dependency, absent on some machines).
"""
from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=1)
def import_open3d() -> Any:
    """The ``open3d`` module, after loading ``libusb-1.0`` globally (from the ``libusb_package`` wheel where the
    system has none): open3d's Python module links against it and fails to import without it."""
    import ctypes
    import os

    try:
        ctypes.CDLL("libusb-1.0.so.0", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        import libusb_package

        ctypes.CDLL(os.path.join(os.path.dirname(libusb_package.__file__), "libusb-1.0.so"), mode=ctypes.RTLD_GLOBAL)
    import open3d

    return open3d


__all__ = ["import_open3d"]
