"""Run by test_frame_msg.py in a shell that sourced the colcon install: subscribe to the node's PerceptionFrame and its
separate output topics, publish one frame, compare, print one JSON line."""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rclpy  # noqa: E402
from mtlsi_ros_msgs.msg import PerceptionFrame  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402

from mtlsi_ros.client import PerceptionClient, stamp_to_ns  # noqa: E402
from node_helpers import intrinsics, sample_image  # noqa: E402

H, W = 60, 80
STAMP = 1_900_000_000_000_000_011
TOPICS = ["segmentation", "depth", "normals", "boundary", "output/camera_info"]


def main() -> int:
    rclpy.init()
    client = PerceptionClient("/t", topics=TOPICS)
    got: dict[int, PerceptionFrame] = {}
    cond = threading.Condition()

    def on_frame(msg: PerceptionFrame) -> None:
        with cond:
            got[stamp_to_ns(msg.header.stamp)] = msg
            cond.notify_all()

    client.node.create_subscription(PerceptionFrame, "/t/perception_frame", on_frame,
                                    QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    try:
        client.wait_for_node(60)
        h = client.publish(sample_image(H, W, seed=2), stamp_ns=STAMP, frame_id="cam_optical", k=intrinsics(H, W))
        outs = client.wait_for(h, timeout=60)
        with cond:
            if not cond.wait_for(lambda: STAMP in got, timeout=60):
                print("no PerceptionFrame received", file=sys.stderr)
                return 1
        frame = got[STAMP]
        equal = {t.split("/")[-1]: serialize_message(getattr(frame, t.split("/")[-1])) == serialize_message(r.msg)
                 for t, r in outs.items()}
        res = {"header": [frame.header.frame_id, stamp_to_ns(frame.header.stamp)], "equal": equal,
               "empty": {f: getattr(frame, f).height == 0 and len(getattr(frame, f).data) == 0
                         for f in ("human_parts", "saliency")}}
        print(json.dumps(res))
        return 0
    finally:
        client.close()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
