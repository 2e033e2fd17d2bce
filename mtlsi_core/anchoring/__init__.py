"""Floor anchoring: metric depth from the robot's own camera mount (pure numpy, no ROS, no torch).

A robot knows where its camera sits: height above the floor, pitch and roll (``plane.CameraMount``). That fixes
the floor plane in the camera optical frame (``plane.FloorPlane``) and so the exact depth of every pixel that sees
the floor below the horizon. ``anchor.FloorAnchor`` compares it with the network's depth on the pixels the network
labels floor (confident, with a normal that agrees with the plane) and keeps a robust, bounded, smoothed metric
scale per camera over time; ``anchor.anchor_outputs`` applies it to one frame's runtime outputs (depth, hence the
point cloud built from it). Used by the perception node (one anchor per camera), ``mtlsi-bag infer`` and the
Python API, after ``Runtime.infer``::

    anchor = FloorAnchor(FloorPlane.from_mount(CameraMount(0.45, pitch_deg=10.0)), floor_classes(rt.dataset))
    out = rt.infer([rgb])[0]                       # a runtime made with auxiliary=("confidence",)
    state = anchor_outputs(out, anchor, K)         # out["depth"] scaled in place; state.scale, .support, .status

What it may touch: the numpy arrays it is given (depth, in place) and its own state; it reads the task registry
for class names and output keys. It never reads /tf: the mount comes from the caller (node parameters).
``plane.fit_floor_plane`` fits the floor to a depth map's floor pixels (the benchmarks: ground-truth depth standing
in for a calibrated mount).
"""
from mtlsi_core.anchoring.anchor import (FLOOR_CLASS_NAMES, STATUSES, AnchorConfig, AnchorState, FloorAnchor,
                                         anchor_keys, anchor_outputs, floor_classes)
from mtlsi_core.anchoring.plane import CameraMount, FloorPlane, fit_floor_plane

__all__ = ["AnchorConfig", "AnchorState", "CameraMount", "FLOOR_CLASS_NAMES", "FloorAnchor", "FloorPlane",
           "STATUSES", "anchor_keys", "anchor_outputs", "fit_floor_plane", "floor_classes"]
