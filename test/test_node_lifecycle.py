"""Lifecycle over real DDS, driven through the node's services: a missing or corrupt model fails configure with a
message naming the file and the process stays up; no outputs while inactive; inference skipped while nobody
subscribes; deactivate / activate; the no-image warning; cleanup and shutdown."""
from __future__ import annotations

import time

import pytest

from mtlsi_ros.client import LifecycleClient, PerceptionClient
from node_helpers import node_session, sample_image, tiny_checkpoint

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    params = {"device": "cpu", "autostart": False, "model_path": "/nonexistent/dir/missing_model.pt",
              "no_image_warn_s": 1.0, "diagnostics_period_s": 0.25}
    yield from node_session(tmp_path_factory.mktemp("node_lifecycle"), __name__, params, wait_for=None)


@pytest.fixture(scope="module")
def lifecycle(node):
    proc, ros, _ = node
    with PerceptionClient("/t", cameras=(), topics=[], context=ros.context) as driver:  # spins the service client
        yield LifecycleClient(driver.node, proc.fqn)


def test_bad_model_files_fail_configure_naming_the_file(node, lifecycle, tmp_path):
    proc, _, _ = node
    assert lifecycle.get_state(timeout=60) == "unconfigured"
    start = len(proc.log())
    assert lifecycle.change_state("configure") is False
    proc.wait_log(r"configure failed: model file not found: /nonexistent/dir/missing_model\.pt", start=start)
    assert lifecycle.get_state() == "unconfigured" and proc.alive()

    corrupt = tmp_path / "corrupt_model.pt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    assert all(lifecycle.set_parameters({"model_path": str(corrupt)}))
    start = len(proc.log())
    assert lifecycle.change_state("configure") is False
    proc.wait_log(r"configure failed: .*" + str(corrupt).replace(".", r"\.") + r".*corrupt", start=start)
    assert lifecycle.get_state() == "unconfigured" and proc.alive()

    assert all(lifecycle.set_parameters({"qos_depth": 0, "model_path": str(tiny_checkpoint())}))
    start = len(proc.log())
    assert lifecycle.change_state("configure") is False
    proc.wait_log(r"configure failed: parameter 'qos_depth' = 0: must be > 0", start=start)
    assert all(lifecycle.set_parameters({"qos_depth": 1}))


def test_transitions_outputs_and_subscriber_gating(node, lifecycle):
    proc, ros, _ = node
    assert lifecycle.change_state("configure") and lifecycle.get_state() == "inactive"
    img = sample_image(64, 96)
    # inactive: nobody subscribes to the images, nothing is published
    with PerceptionClient("/t", context=ros.context, topics=["segmentation"]) as c:
        time.sleep(1.0)
        assert c._pub_img[""].get_subscription_count() == 0
        c.publish(img)
        time.sleep(1.0)
        assert c.answered() == []
        d = c.wait_diagnostics(lambda v: v["message"] == "inactive")
        assert d["frames_in"] == "0"

    assert lifecycle.change_state("activate") and lifecycle.get_state() == "active"
    # active, no image yet: warning after no_image_warn_s
    with PerceptionClient("/t", context=ros.context, topics=[]) as pub_only:
        d = pub_only.wait_diagnostics(lambda v: v["level"] == "1" and "no image" in v["message"], timeout=15)
        # the default backend (auto) says what it chose and why: device cpu -> ONNX Runtime
        assert (d["backend"], d["backend.requested"]) == ("onnx", "auto"), d
        assert "ONNX Runtime on the CPU" in d["backend.reason"] and d["backend.model_file"].endswith(".onnx")
        proc.wait_log(r"backend auto: runs onnx on cpu \(fp32\): device 'cpu' asked")
        # nobody subscribes to any output: frames are counted and skipped, not inferred
        deadline = time.monotonic() + 30
        while pub_only._pub_img[""].get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(3):
            pub_only.publish(img)
            time.sleep(0.2)
        d = pub_only.wait_diagnostics(lambda v: int(v["dropped.no_subscribers"]) >= 3)
        assert d["frames_out"] == "0" and d["level"] == "0"

    with PerceptionClient("/t", context=ros.context, topics=["segmentation", "depth"]) as c:
        c.wait_for_node(60)
        c.wait_for(c.publish(img), timeout=30)
        assert lifecycle.change_state("deactivate") and lifecycle.get_state() == "inactive"
        time.sleep(0.5)
        h = c.publish(img)
        time.sleep(1.5)
        assert c.get(h) is None, "an inactive node published"
        c.wait_diagnostics(lambda v: v["message"] == "inactive")
        # activate again: the model released by deactivate is loaded again
        assert lifecycle.change_state("activate")
        c.wait_for_node(60)
        c.wait_for(c.publish(img), timeout=30)

    assert lifecycle.change_state("deactivate") and lifecycle.change_state("cleanup")
    assert lifecycle.get_state() == "unconfigured"
    assert lifecycle.change_state("shutdown") and lifecycle.get_state() == "finalized"
    assert proc.alive()
    assert "Traceback" not in proc.log()
