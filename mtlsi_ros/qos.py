"""QoS profiles of the perception node.

Inputs default to the sensor-data profile with depth 1 (best effort, keep last 1, volatile): a frame that
arrives while the previous one is still waiting replaces it, so the node always works on the newest image.
``process_every_frame`` switches inputs to reliable keep-all so a rosbag player is slowed down instead of
frames being lost. Outputs default to reliable keep-last 1, which every subscriber (best effort or reliable)
can match.
"""
from __future__ import annotations

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)

RELIABILITY = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


def input_qos(reliability: str = "best_effort", depth: int = 1, keep_all: bool = False) -> QoSProfile:
    """Image subscriptions. ``keep_all`` (process_every_frame) forces reliable keep-all."""
    if reliability not in RELIABILITY:
        raise ValueError(f"reliability must be one of {', '.join(RELIABILITY)}, got {reliability!r}")
    if depth < 1:
        raise ValueError(f"history depth must be >= 1, got {depth}")
    if keep_all:
        return QoSProfile(history=HistoryPolicy.KEEP_ALL, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    q = QoSProfile(**{k: getattr(qos_profile_sensor_data, k) for k in ("history", "durability")}, depth=depth)
    q.reliability = RELIABILITY[reliability]
    return q


def camera_info_qos(reliable: bool = False) -> QoSProfile:
    """camera_info: best effort (matches any publisher), a few deep so one arriving just before its image is kept.

    ``reliable`` (process_every_frame): a best-effort reader drops what a writer sends before the reader has
    discovered it, so a bag's first camera_info messages would be lost; reliable readers get them re-sent."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def output_qos(reliability: str = "reliable", depth: int = 1) -> QoSProfile:
    if reliability not in RELIABILITY:
        raise ValueError(f"reliability must be one of {', '.join(RELIABILITY)}, got {reliability!r}")
    if depth < 1:
        raise ValueError(f"history depth must be >= 1, got {depth}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=RELIABILITY[reliability],
                      durability=DurabilityPolicy.VOLATILE)


def diagnostics_qos() -> QoSProfile:
    """/diagnostics as diagnostic_updater publishes it (reliable, depth 10)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


__all__ = ["RELIABILITY", "camera_info_qos", "diagnostics_qos", "input_qos", "output_qos"]
