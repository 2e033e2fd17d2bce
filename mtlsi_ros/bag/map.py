"""``mtlsi-bag map``: a semantic 3D map from a bag's depth and segmentation, scored against the scene's ground truth.

Inputs: the node's output topics ``<ns>/depth`` (32FC1 metres along the optical z axis, NaN invalid) and
``<ns>/segmentation`` (class ids) of ``bag`` (``mtlsi-bag infer``'s output, or a recording of the live node), frames
grouped by header stamp; intrinsics from ``<ns>/output/camera_info`` (else ``<ns>/camera_info`` or the parent
namespace's camera_info, scaled to the output size), at the frame's stamp or the newest before it; the camera pose
``map -> header.frame_id`` from ``/tf`` and ``/tf_static`` of ``poses_bag`` (default: ``bag`` itself; ``infer`` copies
them) at the frame's stamp, composed along the frame tree as tf2 does (``map -> odom -> base_link -> camera``;
``bag.transforms``).

Numerics: ``mtlsi_core.mapping`` (Open3D VoxelBlockGrid TSDF, per-voxel label votes, scores, pictures). The same map
is built from the ground-truth topics (``<ns>/gt/depth``, ``<ns>/gt/segmentation``, with ``<ns>/camera_info``) as
the upper bound, when a bag has them. Scores need the scene file that ``mtlsi-bag make --sequence`` writes beside the
bag (``make.scene_file``; its ground-truth points seen within ``depth_max`` are the reference); without one the maps
are written unscored.

Outputs, in a folder that appears only once complete (``mtlsi_core.mapping.io.AtomicFolder``):

    map_mesh.ply        mesh, vertex colour = class colour, vertex label (uchar, NYUDv2 0-based, 255 = none)
    map_points.ply      labelled points (the mesh vertices): x y z, rgb, label, confidence
    map_points.npz      points, labels, confidence, colors, triangles (arrays)
    gt_map_*.ply / .npz the same for the ground-truth upper bound
    map_topdown.png     top-down views (network | ground truth), map_first_pose.png: from the first pose
    map.json            scores, settings, frame counts

Bad input raises ``BagError`` (one line): no pose topic, no transform ``map -> <frame>`` (at a stamp), depth and
labels of different sizes at a stamp, no camera_info, no frames.
"""
from __future__ import annotations

import bisect
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.evaluate import FrameStream, StampJoin, decode_prediction, find_namespace
from mtlsi_ros.bag.groundtruth import GT_NAMESPACE, decode_gt
from mtlsi_ros.bag.msgtypes import CAMERA_INFO, IMAGE
from mtlsi_ros.bag.storage import BagReader
from mtlsi_ros.bag.transforms import DEFAULT_MAP_FRAME, TF_STATIC_TOPIC, TF_TOPIC, PoseTable, read_pose_table


@dataclass(frozen=True)
class MapOptions:
    namespace: str | None = None  # of the node's outputs; None: found from the topics
    gt_namespace: str | None = None  # None: <namespace>/gt
    map_frame: str = DEFAULT_MAP_FRAME
    tf_topic: str = TF_TOPIC
    voxel_size: float = 0.04
    depth_min: float = 0.1
    depth_max: float = 6.0
    trunc_voxels: float = 4.0
    weight_threshold: float = 1.0  # marching cubes skips voxels observed fewer times
    threshold: float = 0.05  # F-score distance (m)
    gt_map: bool = True
    max_frames: int | None = None
    overwrite: bool = False


@dataclass
class PosedFrame:
    stamp: int
    frame_id: str
    depth: np.ndarray  # metres, 0 = invalid
    labels: np.ndarray
    K: np.ndarray
    T: np.ndarray  # T_map_cam


def _ns(namespace: str) -> str:
    return "/" + namespace.strip("/") if namespace.strip("/") else ""


class InfoTable:
    """camera_info of a topic by stamp: the exact stamp, else the newest before it (as the node pairs them)."""

    def __init__(self, bag: BagReader, topic: str):
        self.topic, self.source = topic, str(bag.path)
        items: dict[int, tuple[np.ndarray, tuple[int, int]]] = {}
        for raw in bag.messages([topic]):
            msg = bag.deserialize(raw)
            k = np.asarray(msg.k, np.float64).reshape(3, 3)
            if k[0, 0] <= 0 or k[1, 1] <= 0 or not np.all(np.isfinite(k)):
                raise BagError(f"{bag.path}: {topic} message {raw.index}: camera matrix without a focal length")
            st = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            items[st] = (k, (int(msg.height), int(msg.width)))
        self.stamps = sorted(items)
        self.items = [items[s] for s in self.stamps]

    def lookup(self, stamp: int, hw: tuple[int, int], where: str) -> np.ndarray:
        i = bisect.bisect_right(self.stamps, stamp) - 1
        if i < 0:
            raise BagError(f"{self.source}: no {self.topic} at or before stamp {stamp} ns ({where})")
        k, src_hw = self.items[i]
        if src_hw != tuple(hw):
            from mtlsi_core.outputs import scale_intrinsics

            p = np.concatenate([k, np.zeros((3, 1))], axis=1).reshape(-1)
            k = np.asarray(scale_intrinsics(k.reshape(-1), p, src_hw, hw)[0], np.float64).reshape(3, 3)
        return k


def _find_info(readers: list[BagReader], topics: list[str]) -> InfoTable:
    for t in topics:
        for r in readers:
            if t in r.topics() and r.topics()[t] == CAMERA_INFO:
                return InfoTable(r, t)
    raise BagError(f"no camera_info for the intrinsics: none of {', '.join(topics)} in "
                   f"{', '.join(str(r.path) for r in readers)}")


def _decode_posed(key: tuple[str, str], msg: Any, where: str) -> tuple[np.ndarray, str]:
    """(array, header frame_id) of a prediction ("pred") or ground-truth ("gt") image."""
    side, task = key
    arr = (decode_prediction if side == "pred" else decode_gt)(task, msg, where)
    return arr, msg.header.frame_id


def _pose_frames(reader: BagReader, side: str, depth_topic: str, seg_topic: str, info: InfoTable, poses: PoseTable,
                 map_frame: str, max_frames: int | None) -> Iterator[PosedFrame]:
    keys = {depth_topic: (side, "depth"), seg_topic: (side, "semseg")}
    stream = FrameStream(reader, keys, _decode_posed)
    for n, (stamp, frame) in enumerate(stream):
        if max_frames is not None and n >= max_frames:
            return
        (depth, fid), (labels, _) = frame[(side, "depth")], frame[(side, "semseg")]
        if depth.shape[:2] != labels.shape[:2]:
            raise BagError(f"{reader.path}: at stamp {stamp} ns {depth_topic} is {depth.shape[0]}x{depth.shape[1]} but "
                           f"{seg_topic} is {labels.shape[0]}x{labels.shape[1]}: depth and labels must be the same "
                           f"size")
        where = f"frame of {depth_topic} stamped {stamp} ns"
        K = info.lookup(stamp, depth.shape[:2], where)
        T = poses.lookup(map_frame, fid, stamp, where)
        yield PosedFrame(stamp, fid, depth, labels, K, T)


@dataclass
class BagTopics:
    """Where a bag's map inputs are: readers and topic names of the predictions and ground truth."""

    pred: BagReader
    ns: str
    gt: BagReader | None
    gt_ns: str
    pose_reader: BagReader

    def pred_topics(self) -> tuple[str, str]:
        return f"{self.ns}/depth", f"{self.ns}/segmentation"

    def gt_topics(self) -> tuple[str, str]:
        return f"{self.gt_ns}/depth", f"{self.gt_ns}/segmentation"

    def pred_info(self) -> InfoTable:
        parent = self.ns.rsplit("/", 1)[0]  # e.g. ground truth under <camera>/gt mapped as "predictions"
        return _find_info([self.pred, self.pose_reader], [f"{self.ns}/output/camera_info", f"{self.ns}/camera_info",
                                                          f"{parent}/camera_info"])

    def gt_info(self) -> InfoTable:
        cam = self.gt_ns[: -len(f"/{GT_NAMESPACE}")] if self.gt_ns.endswith(f"/{GT_NAMESPACE}") else self.gt_ns
        return _find_info([r for r in (self.gt, self.pred) if r is not None], [f"{cam}/camera_info"])


def locate(bag: BagReader, pose_reader: BagReader, namespace: str | None, gt_namespace: str | None) -> BagTopics:
    ns = _ns(namespace) if namespace is not None else find_namespace(bag)
    for t in (f"{ns}/depth", f"{ns}/segmentation"):
        bag.require_topic(t, (IMAGE,), what="prediction")
    gt_ns = _ns(gt_namespace) if gt_namespace is not None else f"{ns}/{GT_NAMESPACE}"
    gt = None
    for r in (bag, pose_reader):
        if all(t in r.topics() for t in (f"{gt_ns}/depth", f"{gt_ns}/segmentation")):
            gt = r
            break
    return BagTopics(bag, ns, gt, gt_ns, pose_reader)


def _reference(scene: Mapping[str, Any], depth_max: float) -> tuple[np.ndarray, np.ndarray]:
    keep = np.asarray(scene["min_depth"]) <= depth_max
    return np.asarray(scene["points"])[keep], np.asarray(scene["labels"])[keep]


def _build(frames: Iterator[PosedFrame], options: MapOptions) -> tuple[Any, PosedFrame | None, float]:
    from mtlsi_core.mapping.tsdf import SemanticTSDF, TSDFOptions

    tsdf = SemanticTSDF(TSDFOptions(voxel_size=options.voxel_size, depth_min=options.depth_min,
                                    depth_max=options.depth_max, trunc_voxels=options.trunc_voxels,
                                    weight_threshold=options.weight_threshold))
    first = None
    t0 = time.perf_counter()
    for f in frames:
        if first is None:
            first = f
        try:
            tsdf.integrate(f.depth, f.labels, f.K, f.T)
        except ValueError as e:
            raise BagError(f"frame stamped {f.stamp} ns: {e}") from None
    if first is None:
        return None, None, 0.0
    return tsdf.extract(), first, time.perf_counter() - t0


def _save_map(folder: Path, prefix: str, result: Any) -> None:
    from mtlsi_core.mapping.io import ply_mesh_bytes, ply_points_bytes, write_npz
    from mtlsi_core.checkpoint import atomic_write_bytes

    atomic_write_bytes(folder / f"{prefix}_mesh.ply",
                       ply_mesh_bytes(result.vertices, result.triangles, result.colors, result.labels))
    atomic_write_bytes(folder / f"{prefix}_points.ply",
                       ply_points_bytes(result.vertices, result.colors, result.labels, result.confidence))
    write_npz(folder / f"{prefix}_points.npz", points=result.vertices, labels=result.labels,
              confidence=result.confidence, colors=result.colors, triangles=result.triangles)


def find_scene_file(*bags: str | os.PathLike) -> Path | None:
    from mtlsi_ros.bag.make import scene_file

    for b in bags:
        p = scene_file(b)
        if p.is_file():
            return p
    return None


def build_bag_maps(bag_path: str | os.PathLike, *, poses_bag: str | os.PathLike | None = None,
                   options: MapOptions = MapOptions()) -> dict[str, Any]:
    """The network map and (when the bag has ground truth and ``gt_map``) the ground-truth map of a bag:
    {"network": (MapResult, first PosedFrame, seconds), "ground_truth": ... or None, "topics": {...}}."""
    from mtlsi_core.mapping.tsdf import TSDFOptions

    o = options
    if o.max_frames is not None and o.max_frames < 1:
        raise BagError(f"--max-frames must be >= 1, got {o.max_frames}")
    try:
        TSDFOptions(voxel_size=o.voxel_size, depth_min=o.depth_min, depth_max=o.depth_max,
                    trunc_voxels=o.trunc_voxels).check()
    except ValueError as e:
        raise BagError(f"map settings: {e}") from None
    with BagReader(bag_path) as bag:
        pose_reader = BagReader(poses_bag).open() if poses_bag is not None else bag
        try:
            where = locate(bag, pose_reader, o.namespace, o.gt_namespace)
            poses = read_pose_table(pose_reader, o.tf_topic)
            d, s = where.pred_topics()
            info = where.pred_info()
            net = _build(_pose_frames(bag, "pred", d, s, info, poses, o.map_frame, o.max_frames), o)
            if net[0] is None:
                raise BagError(f"{bag.path}: no frame has both {d} and {s}")
            gt = None
            if o.gt_map and where.gt is not None:
                gd, gs = where.gt_topics()
                gt = _build(_pose_frames(where.gt, "gt", gd, gs, where.gt_info(), poses, o.map_frame, o.max_frames), o)
                if gt[0] is None:
                    gt = None
            static = f" {TF_STATIC_TOPIC}" if TF_STATIC_TOPIC in pose_reader.topics() else ""
            topics = {"depth": d, "segmentation": s, "camera_info": info.topic,
                      "poses": f"{pose_reader.path} {o.tf_topic}{static}",
                      "ground_truth": (f"{where.gt.path} {where.gt_ns}/..." if gt is not None else None)}
        finally:
            if pose_reader is not bag:
                pose_reader.close()
    return {"network": net, "ground_truth": gt, "topics": topics}


def run_map(bag_path: str | os.PathLike, out_dir: str | os.PathLike, *, poses_bag: str | os.PathLike | None = None,
            scene: str | os.PathLike | None = None, options: MapOptions = MapOptions()) -> dict[str, Any]:
    """Build, score and write the maps of a bag (module docstring); returns the map.json document."""
    from mtlsi_core.mapping.io import AtomicFolder, write_png
    from mtlsi_core.mapping.metrics import score_map
    from mtlsi_core.mapping.render import map_views, side_by_side
    from mtlsi_ros.bag.make import read_scene_file

    o = options
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not o.overwrite:
        raise BagError(f"{out} exists already; choose another output or allow overwriting (--force)")
    if not out.parent.is_dir():
        raise BagError(f"{out}: the folder {out.parent} does not exist")
    scene_path = Path(scene) if scene is not None else find_scene_file(*(b for b in (poses_bag, bag_path) if b))
    scene_doc = read_scene_file(scene_path) if scene_path is not None else None
    maps = build_bag_maps(bag_path, poses_bag=poses_bag, options=o)
    doc: dict[str, Any] = {"bag": str(bag_path), "poses_bag": str(poses_bag or bag_path),
                           "scene_file": str(scene_path) if scene_path else None, "topics": maps["topics"],
                           "settings": {k: v for k, v in asdict(o).items() if k != "overwrite"},
                           "maps": {}, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    ref = _reference(scene_doc, o.depth_max) if scene_doc is not None else None
    for name in ("network", "ground_truth"):
        entry = maps[name]
        if entry is None:
            continue
        result, first, seconds = entry
        rec: dict[str, Any] = {"frames": result.frames, "vertices": int(len(result.vertices)),
                               "triangles": int(len(result.triangles)), "integrate_seconds": round(seconds, 3)}
        if ref is not None:
            rec["scores"] = score_map(result.vertices, result.triangles, result.labels, ref[0], ref[1], o.threshold)
        doc["maps"][name] = rec
    if scene_doc is not None:
        doc["scene"] = scene_doc["spec"]
    names = [n for n in ("network", "ground_truth") if maps[n] is not None]
    first = maps["network"][1]
    views = dict(zip(names, map_views([maps[n][0] for n in names], first.K, first.T, first.depth.shape[:2])))
    titles = {"network": "network depth + labels", "ground_truth": "ground-truth depth + labels (upper bound)"}
    try:
        with AtomicFolder(out, overwrite=o.overwrite) as tmp:
            _save_map(tmp, "map", maps["network"][0])
            if maps["ground_truth"] is not None:
                _save_map(tmp, "gt_map", maps["ground_truth"][0])
            write_png(tmp / "map_topdown.png", side_by_side([views[n][0] for n in names], [titles[n] for n in names]))
            write_png(tmp / "map_first_pose.png", side_by_side([views[n][1] for n in names],
                                                               [titles[n] for n in names]))
            doc["seconds"] = round(time.perf_counter() - t0, 3)
            (tmp / "map.json").write_text(json.dumps(doc, indent=2) + "\n")
    except (FileExistsError, FileNotFoundError) as e:
        raise BagError(str(e)) from None
    doc["out"] = str(out)
    return doc


def format_map_summary(doc: Mapping[str, Any]) -> str:
    """A few lines of scores per map."""
    lines = []
    for name, rec in doc["maps"].items():
        s = rec.get("scores")
        head = f"{name:12s} {rec['frames']} frames, {rec['vertices']} vertices"
        if s is None:
            lines.append(head + " (no scene file: unscored)")
            continue
        lines.append(f"{head}: accuracy {s['accuracy_m']:.3f} m, completeness {s['completeness_m']:.3f} m, "
                     f"F@{s['threshold_m'] * 100:.0f}cm {s['fscore'] * 100:.1f} % (P {s['precision'] * 100:.1f}, "
                     f"R {s['recall'] * 100:.1f}), semantic accuracy {s['semantic_accuracy'] * 100:.1f} %")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- temporal stability


def sequence_stability(bag: BagReader, gt_reader: BagReader | None, ns: str, gt_ns: str, pose_reader: BagReader,
                       map_frame: str = DEFAULT_MAP_FRAME, tf_topic: str = TF_TOPIC,
                       max_frames: int | None = None) -> dict[str, Any]:
    """Frame-to-frame disagreement of the predictions (and of the ground truth, the floor) of consecutive frames,
    warped with the poses (``mtlsi_core.mapping.stability``); ground-truth depth decides correspondences and
    visibility where the bag has it."""
    from mtlsi_core.mapping.stability import StabilityAccumulator, pair_disagreement

    poses = read_pose_table(pose_reader, tf_topic)
    where = BagTopics(bag, ns, gt_reader, gt_ns, pose_reader)
    d, s = where.pred_topics()
    info = where.pred_info()
    preds = _pose_frames(bag, "pred", d, s, info, poses, map_frame, max_frames)
    if gt_reader is None:
        pairs: Iterator = ((p.stamp, p, None) for p in preds)
    else:
        gd, gs = where.gt_topics()
        gts = _pose_frames(gt_reader, "gt", gd, gs, where.gt_info(), poses, map_frame, max_frames)
        pairs = StampJoin(((p.stamp, p) for p in preds), ((g.stamp, g) for g in gts))
    acc_pred, acc_gt = StabilityAccumulator(), StabilityAccumulator()
    prev = None
    for _, p, g in pairs:
        if g is not None and p.depth.shape != g.depth.shape:
            from mtlsi_ros.bag.evaluate import to_gt_grid

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
    rows = [("prediction", st["prediction"])] + ([("ground truth", st["ground_truth"])] if "ground_truth" in st else [])
    lines = [f"temporal stability over {st['prediction']['pairs']} consecutive frame pairs (warped with the poses, "
             f"correspondences from {st['warp_geometry']}):"]
    for name, r in rows:
        lines.append(f"  {name:12s} depth disagreement {r['depth_rel_mean'] * 100:6.2f} % (> 5 %: "
                     f"{r['depth_rel_over_5pct'] * 100:5.2f} % of pixels), label flips {r['label_flip_rate'] * 100:6.2f} %")
    return "\n".join(lines)


__all__ = ["MapOptions", "PosedFrame", "build_bag_maps", "find_scene_file", "format_map_summary", "format_stability",
           "run_map", "sequence_stability"]
