#!/usr/bin/env python3
"""Floor anchoring with the shipped model: does a floor-derived scale (and replacing floor pixels by the plane's
depth) bring the depth closer to the truth? (issue 19, item 1)

Frames: held-out synthetic ``nyud`` rooms (``render_scene(seed, profile="nyud")``'s room and camera, seeds 9301...;
the camera pose gives the exact mount) and two ground-robot sequences (``make_sequence``, basic profile, a static
mount: the carrier's bob and roll removed so the mount is exact). The shipped model (torch, CPU, fp32, with the
labels' confidence) predicts each frame with the Kinect focal length; per frame, on the ground truth's valid pixels:

    raw        the prediction (focal-length corrected, as the node publishes it)
    scale      x the frame's own floor scale (a fresh FloorAnchor per frame: no smoothing, no history)
    scale_noconf  the same without the labels' confidence (floor_min_confidence 0: no confidence output)
    replace    scale, and the support pixels within 25 % of the plane set to its depth (AnchorConfig.replace_floor)
    oracle     x median(gt / pred) over all valid pixels (the best a single scale can do; for reference)

AbsRel = mean |d - gt| / gt over all valid pixels and over the ground-truth floor pixels; the scale error
|s_floor / s_oracle - 1|; and for the sequences the temporal anchor (smoothing, bounds) as the node runs it.

Real frames: the NYUDv2 frames of ../shared/data/nyud_real_samples with depth ground truth (two; skipped where
absent), with the floor plane fitted to the ground-truth depth of the ground-truth floor pixels (RANSAC, 2 cm, then
least squares: ``mtlsi_core.anchoring.fit_floor_plane``) standing in for a known mount: a proxy, and far too few
frames for a benchmark figure.

    python benchmarks/anchoring_quality.py                    # writes benchmarks/results/anchoring_quality.json
    python benchmarks/anchoring_quality.py --frames 4 --out /tmp/q.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mtlsi_core.anchoring import (AnchorConfig, FloorAnchor, FloorPlane, anchor_outputs,  # noqa: E402
                                  fit_floor_plane, floor_classes)
from mtlsi_core.checkpoint import packaged_model  # noqa: E402
from mtlsi_core.tools.machine import describe, save_result  # noqa: E402

SEEDS = tuple(range(9301, 9313))
SEQUENCES = ((9311, "ground"), (9312, "ground"))
REAL = REPO.parent / "shared" / "data" / "nyud_real_samples"


def absrel(d: np.ndarray, gt: np.ndarray, m: np.ndarray) -> float:
    m = m & np.isfinite(d) & (d > 0)
    return float(np.mean(np.abs(d[m] - gt[m]) / gt[m])) if m.any() else float("nan")


def nyud_frames(seeds, size):
    from mtlsi_core.data.rooms import sample_room
    from mtlsi_core.data.synth import kinect_intrinsics, render_nyud

    K = kinect_intrinsics(size)
    for seed in seeds:
        rng = np.random.default_rng(int(seed))  # render_scene(seed, profile="nyud"), keeping the scene's pose
        scene = sample_room(rng)
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = scene.R_wc, scene.cam_pos
        yield f"nyud_{seed}", render_nyud(scene, K, size, rng), T


def static_mount_sequence(seed: int, kind: str, frames: int, size):
    """A ``make_sequence`` trajectory with the carrier's height, pitch and roll held constant (a static mount)."""
    from mtlsi_core.data.sequence import SequenceSpec, camera_pose, make_sequence

    seq = make_sequence(SequenceSpec(seed, kind, frames, 5.0, size))
    p = seq.path
    poses = np.stack([camera_pose(np.array([*p.position(np.float64(t))[:2], p.z0]), float(p.yaw(np.float64(t))),
                                  p.pitch, np.radians(1.5)) for t in seq.times])
    return replace(seq, poses=poses)


def real_frames():
    """(name, SynthFrame-like record, FloorPlane fitted to the ground truth) of the real frames with depth."""
    from types import SimpleNamespace

    from mtlsi_core.data.nyud_samples import discover, load_ground_truth
    from mtlsi_core.data.synth import KINECT_RGB_640x480

    if not REAL.is_dir():
        return
    fx, fy, cx, cy = KINECT_RGB_640x480
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    for f in discover(REAL):
        gt = load_ground_truth(f)
        if "depth" not in gt or "semseg" not in gt:
            continue
        floor = (gt["semseg"] == 1) & (gt["depth"] > 0)
        if floor.sum() < 1000:
            continue
        frame = SimpleNamespace(image=gt["image"], depth=np.where(gt["depth"] > 0, gt["depth"], np.nan),
                                semseg=gt["semseg"], K=K)
        yield f.name, frame, fit_floor_plane(gt["depth"], floor, K)


def evaluate(rt, name, frame, T, fl, temporal=None, plane=None) -> dict:
    gt = frame.depth
    valid = np.isfinite(gt) & (gt > 0)
    floor_gt = valid & np.isin(frame.semseg, fl)
    K = frame.K
    out = rt.infer([frame.image], focal_lengths=[float(K[0, 0])])[0]
    raw = out["depth"].copy()
    plane = plane if plane is not None else FloorPlane.from_pose(T)
    row = {"frame": name, "mount": plane.mount().describe(), "floor_fraction_gt": round(float(floor_gt.mean()), 4),
           "floor_fraction_pred": round(float(np.isin(out["semseg"], fl).mean()), 4)}
    r = gt[valid] / raw[valid]
    oracle = float(np.median(r[np.isfinite(r)]))
    row["oracle_scale"] = oracle
    row["absrel_raw"], row["absrel_raw_floor"] = absrel(raw, gt, valid), absrel(raw, gt, floor_gt)
    row["absrel_oracle"] = absrel(raw * oracle, gt, valid)
    for mode, cfg in (("scale", AnchorConfig()), ("replace", AnchorConfig(replace_floor=True)),
                      ("scale_noconf", AnchorConfig())):
        o = {k: (v.copy() if k == "depth" else v) for k, v in out.items() if
             not (mode == "scale_noconf" and k.endswith("_confidence"))}
        st = anchor_outputs(o, FloorAnchor(plane, fl, cfg), K)
        row[f"{mode}_status"], row[f"{mode}_support"] = st.status, st.support
        row[f"absrel_{mode}"], row[f"absrel_{mode}_floor"] = absrel(o["depth"], gt, valid), absrel(o["depth"], gt,
                                                                                                    floor_gt)
        if mode.startswith("scale"):
            row[f"floor_{mode}"] = st.measured
            row[f"{mode}_error"] = abs(st.measured / oracle - 1) if np.isfinite(st.measured) else float("nan")
        else:
            row["replaced_pixels"] = st.replaced
    if temporal is not None:
        o = {k: (v.copy() if k == "depth" else v) for k, v in out.items()}
        st = anchor_outputs(o, temporal, K)
        row["temporal_status"], row["temporal_scale"] = st.status, st.scale
        row["absrel_temporal"], row["absrel_temporal_floor"] = absrel(o["depth"], gt, valid), absrel(o["depth"], gt,
                                                                                                      floor_gt)
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}


def summarise(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k.startswith("absrel_") or k.endswith("_error")]
    out = {}
    for k in keys:
        v = np.array([r.get(k, np.nan) for r in rows], float)
        v = v[np.isfinite(v)]
        out[k] = round(float(np.mean(v)), 4) if v.size else None
    out["frames"] = len(rows)
    anchored = [r for r in rows if r.get("scale_status") == "anchored"]
    out["frames_with_scale"] = len(anchored)
    for k in keys:  # the frames that gave a scale only
        v = np.array([r.get(k, np.nan) for r in anchored], float)
        v = v[np.isfinite(v)]
        out[f"anchored_frames.{k}"] = round(float(np.mean(v)), 4) if v.size else None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=len(SEEDS), help="nyud frames (default: all seeds)")
    ap.add_argument("--sequence-frames", type=int, default=12)
    ap.add_argument("--size", type=int, nargs=2, default=(480, 640))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "anchoring_quality.json")
    args = ap.parse_args(argv)
    import torch

    from mtlsi_core.runtime import create_runtime

    torch.set_num_threads(2)
    size = tuple(args.size)
    rt = create_runtime("torch", str(packaged_model()), device="cpu", precision="fp32", auxiliary=("confidence",))
    fl = floor_classes(rt.dataset)
    t0 = time.perf_counter()
    nyud = [evaluate(rt, n, f, T, fl) for n, f, T in nyud_frames(SEEDS[:args.frames], size)]
    print("nyud", json.dumps(summarise(nyud)))
    real = [evaluate(rt, n, f, None, fl, plane=pl) for n, f, pl in real_frames()]
    if real:
        print("real", json.dumps(summarise(real)))
    seqs = {}
    for seed, kind in SEQUENCES:
        seq = static_mount_sequence(seed, kind, args.sequence_frames, size)
        anchor = FloorAnchor(FloorPlane.from_pose(seq.poses[0]), fl)
        rows = [evaluate(rt, f"{kind}_{seed}_{i}", seq.render(i), seq.poses[i], fl, anchor) for i in range(len(seq))]
        seqs[f"{kind}_{seed}"] = {"summary": summarise(rows), "frames": rows}
        print(f"{kind}_{seed}", json.dumps(summarise(rows)))
    result = {"what": "floor anchoring with the shipped model: raw vs floor scale vs plane replacement (AbsRel)",
              "model": str(packaged_model()), "size": list(size), "config": AnchorConfig().__dict__,
              "nyud": {"summary": summarise(nyud), "frames": nyud}, "sequences": seqs,
              "real_nyudv2_fitted_floor": {"summary": summarise(real), "frames": real} if real else None,
              "seconds": round(time.perf_counter() - t0, 1), "machine": describe("cpu")}
    print(f"wrote {save_result(args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
