"""Floor anchoring on the ROS side without a node process: the parameters (mounts per camera, errors naming the
parameter), the anchors the node builds, a frame anchored with its camera_info, /diagnostics values, and
``mtlsi-bag infer`` applying the same anchor as the Python API."""
from __future__ import annotations

import numpy as np
import pytest
from std_msgs.msg import Header

from mtlsi_core.anchoring import AnchorConfig, CameraMount, FloorAnchor, FloorPlane, anchor_outputs
from mtlsi_core.tasks import NYUD_CLASSES
from mtlsi_ros.conversions import image_to_numpy, make_camera_info
from mtlsi_ros.diagnostics import camera_status, status_values
from mtlsi_ros.floor_anchoring import anchor_frame, camera_anchors
from mtlsi_ros.params import ParamError, validate
from mtlsi_ros.publishing import runtime_auxiliary

FLOOR = NYUD_CLASSES.index("floor")


def test_defaults_are_off_and_a_single_mount_serves_every_camera():
    p = validate({})
    assert not p.floor_anchoring and runtime_auxiliary(p) is None
    assert camera_anchors(p, ("semseg", "depth"), "nyud") is None
    p = validate({"floor_anchoring": True, "cameras": ["front", "rear"], "camera_height_m": 0.4,
                  "camera_pitch_deg": [10.0, -5.0], "camera_roll_deg": [0, 2]})  # integers from YAML are numbers
    assert p.camera_height_m == (0.4, 0.4) and p.camera_pitch_deg == (10.0, -5.0) and p.camera_roll_deg == (0.0, 2.0)
    assert runtime_auxiliary(p) == ("confidence",)  # the floor pixels' confidence threshold ...
    assert runtime_auxiliary(validate({"floor_anchoring": True, "camera_height_m": 0.4,
                                       "floor_min_confidence": 0.0})) is None  # ... which costs 16-23 ms a frame
    anchors = camera_anchors(p, ("semseg", "depth", "normals", "edge"), "synth")
    assert [a.plane for a in anchors] == [FloorPlane.from_mount(CameraMount(0.4, 10.0, 0.0)),
                                          FloorPlane.from_mount(CameraMount(0.4, -5.0, 2.0))]
    assert anchors[0] is not anchors[1] and anchors[0].floor_ids == (FLOOR,)
    assert anchors[0].config == AnchorConfig()  # the parameters' defaults are the core's


@pytest.mark.parametrize("values, match", [
    ({"floor_anchoring": True}, "'camera_height_m' = 0.0: floor_anchoring: puts the camera on or below the floor"),
    ({"floor_anchoring": True, "camera_height_m": -0.2}, "'camera_height_m' = -0.2: .* below the floor"),
    ({"floor_anchoring": True, "camera_height_m": float("nan")}, "'camera_height_m': expected finite numbers"),
    ({"floor_anchoring": True, "camera_height_m": 0.5, "camera_pitch_deg": 90},
     "'camera_pitch_deg' = 90.0: floor_anchoring: must be within"),
    ({"floor_anchoring": True, "camera_height_m": 0.5, "camera_roll_deg": float("inf")}, "'camera_roll_deg'"),
    ({"floor_anchoring": True, "cameras": ["a", "b"], "camera_height_m": [0.5, -1.0]},
     r"'camera_height_m' = -1.0 \(camera 'b'\)"),
    ({"cameras": ["a", "b", "c"], "camera_height_m": [0.5, 0.6]}, "lists 2 values for 3 camera"),
    ({"camera_height_m": "low"}, "'camera_height_m': expected a number or a list of numbers"),
    ({"camera_height_m": [True]}, "'camera_height_m': expected a number or a list"),
    ({"floor_anchoring": True, "camera_height_m": 0.5, "use_camera_info": False}, "needs use_camera_info"),
    ({"floor_min_confidence": 1.2}, "'floor_min_confidence' = 1.2: must be in"),
    ({"floor_max_normal_angle_deg": 0.0}, "'floor_max_normal_angle_deg'"),
    ({"floor_min_support": 0}, "'floor_min_support' = 0: must be > 0"),
    ({"floor_smoothing": 0.0}, "'floor_smoothing'"),
    ({"floor_max_step": -0.1}, "'floor_max_step'"),
    ({"floor_anchoring": 1}, "'floor_anchoring': expected true or false"),
])
def test_bad_anchoring_parameters_name_the_parameter(values, match):
    with pytest.raises(ParamError, match=match):
        validate(values)


def test_a_model_that_cannot_be_anchored_fails_configure_naming_the_parameter():
    p = validate({"floor_anchoring": True, "camera_height_m": 0.5})
    with pytest.raises(ParamError, match="'floor_anchoring': dataset 'pascal' has no 'floor' class"):
        camera_anchors(p, ("semseg", "depth"), "pascal")
    with pytest.raises(ParamError, match="'floor_anchoring': needs depth and labels; the model predicts normals, edge"):
        camera_anchors(p, ("normals", "edge"), "nyud")


def _floor_frame(hw=(120, 160), pred_scale=0.8):
    """Outputs of a 0.5 m high camera looking 20 degrees down, depth = truth x pred_scale; K for 240x320."""
    plane = FloorPlane.from_mount(CameraMount(0.5, 20.0))
    k_big = np.array([[260.0, 0, 159.5], [0, 260.0, 119.5], [0, 0, 1]])
    from mtlsi_core.outputs import scale_intrinsics

    k = scale_intrinsics(k_big.reshape(-1), [0.0] * 12, (240, 320), hw)[0]
    d = plane.depth(k, hw)
    labels = np.where(np.isfinite(d), FLOOR, 0).astype(np.uint8)
    depth = (np.where(np.isfinite(d), d, 3.0) * pred_scale).astype(np.float32)
    return plane, k_big, {"semseg": labels, "depth": depth}


def test_a_frame_is_anchored_with_its_camera_infos_calibration_size():
    plane, k_big, outs = _floor_frame()
    raw = outs["depth"].copy()
    anchor = FloorAnchor(plane, (FLOOR,))
    info = make_camera_info(k_big, (240, 320), Header())  # calibrated at 240x320, outputs at 120x160
    st = anchor_frame(anchor, outs, info, (240, 320), ("semseg", "depth"))
    assert st.status == "anchored" and st.scale == pytest.approx(1.25, rel=1e-4)
    np.testing.assert_allclose(outs["depth"], raw * st.scale, rtol=1e-6)
    # the point cloud is built from the (anchored) depth the messages get
    from mtlsi_ros.conversions import pointcloud2_to_numpy
    from mtlsi_ros.publishing import POINTS_TOPIC, build_messages, build_plans, build_points_plan

    p = validate({"publish_points": True, "points_organized": True, "points_keep_invalid": True})
    plans = build_plans(("semseg", "depth"), {"semseg": 40, "depth": 1}, p)
    rgb = np.zeros((240, 320, 3), np.uint8)
    msgs = dict(build_messages(plans, Header(), outs, rgb, info, points=build_points_plan(("semseg", "depth"), p,
                                                                                          (64, 96), None)))
    z = pointcloud2_to_numpy(msgs[POINTS_TOPIC])["z"].reshape(outs["depth"].shape)
    np.testing.assert_allclose(z, raw * st.scale, rtol=1e-6)
    # an uncalibrated camera_info (K all zero) and none at all: no intrinsics, depth left alone, last scale kept
    for info in (make_camera_info(np.zeros((3, 3)), (240, 320), Header()), None):
        o = {"semseg": outs["semseg"], "depth": raw.copy()}
        st = anchor_frame(anchor, o, info, (240, 320), ("semseg", "depth"))
        assert st.status == "no_intrinsics" and st.scale == pytest.approx(1.25, rel=1e-4)
        np.testing.assert_array_equal(o["depth"], raw)


def test_diagnostics_report_the_anchor_and_warn_without_intrinsics():
    from diagnostic_msgs.msg import DiagnosticStatus

    from mtlsi_ros.diagnostics import CameraStats

    plane, k_big, outs = _floor_frame()
    anchor = FloorAnchor(plane, (FLOOR,))
    stats = CameraStats("front")
    stats.received(0.0)
    snap = stats.snapshot(0.1)
    anchor_frame(anchor, outs, make_camera_info(k_big, (240, 320), Header()), (240, 320), ("semseg", "depth"))
    st = camera_status("/n", "/front", snap, 5.0, {"backend": "torch"}, anchor=anchor)
    v = status_values(st)
    assert st.level == DiagnosticStatus.OK and v["anchor.status"] == "anchored"
    assert v["anchor.scale"] == "1.2500" and int(v["anchor.support_pixels"]) > 100 and v["anchor.sample_stride"] == "2"
    assert v["anchor.mount"] == "height 0.500 m, pitch +20.00 deg, roll +0.00 deg" and v["backend"] == "torch"
    anchor_frame(anchor, outs, None, (240, 320), ("semseg", "depth"))
    st = camera_status("/n", "/front", snap, 5.0, anchor=anchor)
    assert st.level == DiagnosticStatus.WARN and st.message.startswith("floor anchoring: no camera_info")
    assert status_values(st)["anchor.status"] == "no_intrinsics" and status_values(st)["anchor.scale"] == "1.2500"
    assert "anchor.status" not in status_values(camera_status("/n", "/front", snap, 5.0))  # off: no anchor keys


def test_bag_infer_anchors_each_frame_as_the_python_api_does(tmp_path):
    """``mtlsi-bag infer`` with floor anchoring (the shipped model, which labels floor): the runtime gets the confidence
    output, each frame's depth is the runtime's depth anchored by one FloorAnchor updated in frame order
    (``anchor_outputs``, the Python API), and the summary says how it went. (The frames' cameras are not on this
    mount: this checks the plumbing, not the metric result; test_node_anchoring.py does that.)"""
    from bag_helpers import make_synth_bag, read_bag
    from mtlsi_core.checkpoint import packaged_model
    from mtlsi_core.runtime import create_runtime
    from mtlsi_ros.bag.infer import InferOptions, run_infer

    bag = make_synth_bag(tmp_path / "in", num=3)
    values = {"backend": "torch", "device": "cpu", "precision": "fp32", "warmup": False, "floor_anchoring": True,
              "camera_height_m": 1.2, "camera_pitch_deg": 15.0, "floor_min_support": 20}
    s = run_infer(bag, tmp_path / "out", validate(values), InferOptions(progress=False))
    assert sum(s.anchor_statuses.values()) == s.processed == 3
    assert s.anchor_statuses.get("anchored", 0) + s.anchor_statuses.get("bounded", 0) >= 1 and s.anchor_scale != 1.0
    assert any(n.startswith("floor anchoring (height 1.200 m, pitch +15.00 deg") for n in s.notes), s.notes

    msgs = read_bag(tmp_path / "out")
    rt = create_runtime("torch", str(packaged_model()), device="cpu", precision="fp32", auxiliary=("confidence",))
    anchor = FloorAnchor(FloorPlane.from_mount(CameraMount(1.2, 15.0)), (FLOOR,), AnchorConfig(min_support=20))
    images = sorted((stamp, m) for (t, stamp), (_, m) in msgs.items() if t == "/camera/image")
    infos = {stamp: m for (t, stamp), (_, m) in msgs.items() if t == "/camera/camera_info"}
    statuses = []
    for stamp, img in images:
        rgb = image_to_numpy(img)
        out = rt.infer([rgb], focal_lengths=[infos[stamp].k[0]])[0]
        assert "semseg_confidence" in out
        st = anchor_outputs(out, anchor, np.asarray(infos[stamp].k), (infos[stamp].height, infos[stamp].width))
        statuses.append(st.status)
        published = image_to_numpy(msgs[("/camera/depth", stamp)][1])
        valid = out["depth"] > 0
        np.testing.assert_allclose(published[valid], out["depth"][valid], rtol=1e-6)
    assert {k: statuses.count(k) for k in set(statuses)} == s.anchor_statuses
    assert s.anchor_scale == pytest.approx(anchor.state.scale, rel=1e-9)
