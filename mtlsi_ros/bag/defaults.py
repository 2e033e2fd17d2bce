"""Defaults shared by the bag tools and their CLI (kept free of heavy imports: ``mtlsi-bag play`` / ``record`` start
without loading torch)."""
from __future__ import annotations

DEFAULT_CAMERA = "/camera"  # camera namespace of made bags: /camera/image, /camera/camera_info, /camera/gt/...
DEFAULT_FRAME_ID = "camera_optical_frame"
DEFAULT_START_S = 1_700_000_000.0  # stamp of a made bag's first frame: the same inputs make the same bag
COMPRESSED_FORMATS = ("jpeg", "png")
BACKENDS_HELP = "auto (the default: TensorRT, else torch on CUDA, else ONNX Runtime on the CPU), torch, onnx or tensorrt"

__all__ = ["BACKENDS_HELP", "COMPRESSED_FORMATS", "DEFAULT_CAMERA", "DEFAULT_FRAME_ID", "DEFAULT_START_S"]
