"""The demo's real-camera step: the real NYUDv2 frames of a ``nyud_real_samples`` folder go through the running node
as camera images, and its answers are scored against their ground truth beside trivial baselines.

Each frame is published at its own size (640x480) with a camera_info of NYUDv2's focal length (518.86 px), as a
robot's camera would be; the node's depth, segmentation, normals and boundary answers are scored with
``mtlsi_core.data.nyud_samples`` (the figures of ``benchmarks/real_frames.py``, here for the node over DDS, with a
short boundary threshold sweep). Writes ``<out>/real_frames.png`` (input | ground truth | node's answer per task) and
returns the pooled figures. The frames are evaluation data: nothing trains on them, and the picture is written to the
demo's output folder only (it shows real NYUDv2 images: not for git). Skipped where the folder is absent.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

# boundary thresholds of the demo's score: a quick sweep (benchmarks/real_frames.py uses SEISM's 101)
THRESHOLDS = 9
HEADLINES = (("depth", "rmse_m", "depth RMSE (m)"), ("depth", "delta1_pct", "depth delta1 (%)"),
             ("normals", "mErr_deg", "normals mErr (deg)"), ("semseg", "mIoU_gt_classes", "mIoU, classes present"),
             ("semseg", "pixel_acc", "pixel accuracy (%)"), ("edge", "odsF", f"boundary odsF ({THRESHOLDS} thr.)"))


def run_real_frames(client: Any, out: Path, frame_id: str, root: Path, *, timeout: float = 60.0) -> dict[str, Any]:
    """Publish every real frame of ``root`` through ``client``, score the node's answers; returns the summary."""
    import cv2

    from mtlsi_core.checkpoint import atomic_write_bytes
    from mtlsi_core.data.nyud_samples import NYU_FX, NYU_WIDTH, TASKS, RealFrameScores, discover, load_ground_truth, \
        sheet_row
    from mtlsi_core.tasks import get_task
    from mtlsi_core.viz import contact_sheet
    from mtlsi_ros.bag.frames import decode_image

    t0 = time.monotonic()
    frames = discover(Path(root))
    if not frames:
        raise FileNotFoundError(f"no real frames in {root}")
    scores = RealFrameScores(TASKS, THRESHOLDS)
    topics = {t: get_task(t).ros.topic for t in TASKS}  # the node's output topic of each scored task
    rows = []
    for f in frames:
        gt = load_ground_truth(f)
        img = gt["image"]
        h, w = img.shape[:2]
        fx = NYU_FX * w / NYU_WIDTH
        K = np.array([[fx, 0.0, w / 2.0], [0.0, fx, h / 2.0], [0.0, 0.0, 1.0]])
        header = client.publish(img, frame_id=frame_id, k=K)
        got = client.wait_for(header, timeout=timeout, topics=list(topics.values()))
        # the node's images in the metrics' format, as mtlsi-bag eval reads them (NaN depth: the ignore value)
        pred = {t: decode_image(t, got[topic].msg, f"{f.name}: {topic}") for t, topic in topics.items()}
        scores.add(f.name, gt, pred)
        rows.append(sheet_row(gt, pred, TASKS))
    titles = ["input"] + [f"{t} {k}" for t in TASKS for k in ("GT", "node")]
    sheet = contact_sheet(rows, titles, tile_hw=(120, 160))
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("could not encode the real-frame contact sheet")
    path = out / "real_frames.png"
    atomic_write_bytes(path, png.tobytes())
    return {"root": str(root), "frames": [f.name for f in frames], "frames_per_task": scores.frames_per_task(),
            "pooled": scores.pooled(), "picture": str(path), "seconds": round(time.monotonic() - t0, 1)}


def summary_lines(r: dict[str, Any]) -> list[str]:
    lines = [f"real NYUDv2 frames through the node ({len(r['frames'])} frames, {r['root']}): node | trivial baseline"]
    for task, key, label in HEADLINES:
        m, b = r["pooled"]["model"].get(task), r["pooled"]["baseline"].get(task)
        if m is None:
            continue
        n = len(r["frames_per_task"][task])
        lines.append(f"  {label:24s} {m[key]:8.3f} | {b[key]:8.3f}   ({n} frame{'s' if n > 1 else ''})")
    lines.append(f"real-frame picture: {r['picture']} (real NYUDv2 images: keep it out of git)")
    return lines


__all__ = ["run_real_frames", "summary_lines"]
