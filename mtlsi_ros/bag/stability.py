"""Temporal stability of a sequence bag's outputs (``mtlsi-bag eval`` of a bag with /tf): the frame-to-frame
disagreement of depth and labels after warping consecutive frames with the poses (``mtlsi_core.mapping.stability``),
for the predictions and for the ground truth (the floor, ~0). Frames are read as ``map`` reads them (``posed``).
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from mtlsi_core.mapping.stability import StabilityAccumulator, pair_disagreement
from mtlsi_ros.bag.frames import StampJoin, to_gt_grid
from mtlsi_ros.bag.posed import BagTopics, PosedFrame, pose_frames
from mtlsi_ros.bag.storage import BagReader
from mtlsi_ros.bag.transforms import DEFAULT_MAP_FRAME, TF_TOPIC, read_pose_table


def sequence_stability(bag: BagReader, gt_reader: BagReader | None, ns: str, gt_ns: str, pose_reader: BagReader,
                       map_frame: str = DEFAULT_MAP_FRAME, tf_topic: str = TF_TOPIC,
                       max_frames: int | None = None) -> dict[str, Any]:
    """Frame-to-frame disagreement of the predictions (and of the ground truth, the floor) of consecutive frames,
    warped with the poses (``mtlsi_core.mapping.stability``); ground-truth depth decides correspondences and
    visibility where the bag has it."""
    poses = read_pose_table(pose_reader, tf_topic)
    where = BagTopics(bag, ns, gt_reader, gt_ns, pose_reader)
    d, s = where.pred_topics()
    preds = pose_frames(bag, "pred", d, s, where.pred_info(), poses, map_frame, max_frames)
    if gt_reader is None:
        pairs: Iterator = ((p.stamp, p, None) for p in preds)
    else:
        gd, gs = where.gt_topics()
        gts = pose_frames(gt_reader, "gt", gd, gs, where.gt_info(), poses, map_frame, max_frames)
        pairs = StampJoin(((p.stamp, p) for p in preds), ((g.stamp, g) for g in gts))
    acc_pred, acc_gt = StabilityAccumulator(), StabilityAccumulator()
    prev = None
    for _, p, g in pairs:
        if g is not None and p.depth.shape != g.depth.shape:
            p = PosedFrame(p.stamp, p.frame_id, to_gt_grid("depth", p.depth, g.depth.shape),
                           to_gt_grid("semseg", p.labels, g.depth.shape), g.K, p.T)
        if prev is not None:
            (pa, ga), (pb, gb) = prev, (p, g)
            geo_a = ga.depth if ga is not None else None
            geo_b = gb.depth if gb is not None else None
            gl_b = gb.labels if gb is not None else None
            acc_pred.add(pair_disagreement(pa.depth, pb.depth, pa.labels, pb.labels, pa.K, pb.K, pa.T, pb.T,
                                           geo_a, geo_b, gl_b))
            if ga is not None and gb is not None:
                acc_gt.add(pair_disagreement(ga.depth, gb.depth, ga.labels, gb.labels, ga.K, gb.K, ga.T, gb.T,
                                             ga.depth, gb.depth, gb.labels))
        prev = (p, g)
    out = {"prediction": acc_pred.result(), "warp_geometry": "ground-truth depth" if gt_reader is not None else
           "predicted depth", "poses": f"{pose_reader.path} {tf_topic}"}
    if acc_gt.pairs:
        out["ground_truth"] = acc_gt.result()
    return out


def format_stability(st: Mapping[str, Any]) -> str:
    """The lines of ``sequence_stability``'s result under the metrics table."""
    rows = [("prediction", st["prediction"])] + ([("ground truth", st["ground_truth"])] if "ground_truth" in st else [])
    lines = [f"temporal stability over {st['prediction']['pairs']} consecutive frame pairs (warped with the poses, "
             f"correspondences from {st['warp_geometry']}):"]
    for name, r in rows:
        lines.append(f"  {name:12s} depth disagreement {r['depth_rel_mean'] * 100:6.2f} % (> 5 %: "
                     f"{r['depth_rel_over_5pct'] * 100:5.2f} % of pixels), label flips {r['label_flip_rate'] * 100:6.2f} %")
    return "\n".join(lines)


__all__ = ["format_stability", "sequence_stability"]
