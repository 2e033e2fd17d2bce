"""``mtlsi-bag map``: a semantic 3D map from a bag's depth and segmentation, scored against the scene's ground truth.

Inputs: the node's output topics ``<ns>/depth`` (32FC1 metres along the optical z axis, NaN invalid) and
``<ns>/segmentation`` (class ids) of ``bag`` (``mtlsi-bag infer``'s output, or a recording of the live node), frames
grouped by header stamp; intrinsics from ``<ns>/output/camera_info`` (else ``<ns>/camera_info`` or the parent
namespace's camera_info, scaled to the output size), at the frame's stamp or the newest before it; the camera pose
``map -> header.frame_id`` from ``/tf`` and ``/tf_static`` of ``poses_bag`` (default: ``bag`` itself; ``infer`` copies
them) at the frame's stamp, composed along the frame tree as tf2 does (``map -> odom -> base_link -> camera``;
``bag.transforms``). ``bag.posed`` reads these frames (the temporal stability of ``eval`` reads them too).

Numerics: ``mtlsi_core.mapping`` (Open3D VoxelBlockGrid TSDF, per-voxel label votes, scores, pictures). The same map
is built from the ground-truth topics (``<ns>/gt/depth``, ``<ns>/gt/segmentation``, with ``<ns>/camera_info``) as
the upper bound, when a bag has them. Scores need the scene file that ``mtlsi-bag make --sequence`` writes beside the
bag (``make.scene_file``; its ground-truth points seen within ``depth_max`` are the reference); without one the maps
are written unscored. Speed options of ``MapOptions`` (off by default; ``TSDFOptions``): integrate frames bigger
than ``max_size`` subsampled by an integer step, a keyframe rule, Open3D's threads; ``benchmarks/bench_map_speed.py``
measures them. A live map of the node's outputs as they arrive: ``bag.live_map``.

Outputs, in a folder that appears only once complete (``mtlsi_core.mapping.io.AtomicFolder``):

    map_mesh.ply        mesh, vertex colour = class colour, vertex label (uchar, NYUDv2 0-based, 255 = none)
    map_points.ply      labelled points (the mesh vertices): x y z, rgb, label, confidence
    map_points.npz      points, labels, confidence, colors, triangles (arrays)
    gt_map_*.ply / .npz the same for the ground-truth upper bound
    map_topdown.png     top-down views (network | ground truth), map_first_pose.png: from the first pose
    map.json            scores, settings, frame counts (given, integrated, left out by the keyframe rule), timing
                        (seconds reading + decoding, integrating, extracting; frames per second)

Bad input raises ``BagError`` (one line): no pose topic, no transform ``map -> <frame>`` (at a stamp), depth and
labels of different sizes at a stamp, no camera_info, no frames.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from mtlsi_core.checkpoint import atomic_write_bytes
from mtlsi_core.mapping.io import AtomicFolder, ply_mesh_bytes, ply_points_bytes, write_npz, write_png
from mtlsi_core.mapping.metrics import score_map
from mtlsi_core.mapping.render import map_views, side_by_side
from mtlsi_core.mapping.tsdf import SemanticTSDF, TSDFOptions
from mtlsi_ros.bag.errors import BagError
from mtlsi_ros.bag.make import read_scene_file, scene_file
from mtlsi_ros.bag.posed import PosedFrame, locate, pose_frames
from mtlsi_ros.bag.storage import BagReader
from mtlsi_ros.bag.transforms import DEFAULT_MAP_FRAME, TF_STATIC_TOPIC, TF_TOPIC, read_pose_table

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
    # speed (mtlsi_core.mapping.tsdf.TSDFOptions): integrate frames bigger than (H, W) subsampled by an integer step;
    # keyframe rule (both > 0: leave out frames whose camera moved less than both since the last one integrated);
    # Open3D's CPU threads (0: its default)
    max_size: tuple[int, int] | None = None
    keyframe_translation: float = 0.0  # m
    keyframe_rotation_deg: float = 0.0
    threads: int = 0
    threshold: float = 0.05  # F-score distance (m)
    gt_map: bool = True
    max_frames: int | None = None
    overwrite: bool = False


def _reference(scene: Mapping[str, Any], depth_max: float) -> tuple[np.ndarray, np.ndarray]:
    keep = np.asarray(scene["min_depth"]) <= depth_max
    return np.asarray(scene["points"])[keep], np.asarray(scene["labels"])[keep]


def tsdf_options(o: MapOptions) -> TSDFOptions:
    """The TSDF settings of map options."""
    return TSDFOptions(voxel_size=o.voxel_size, depth_min=o.depth_min, depth_max=o.depth_max,
                       trunc_voxels=o.trunc_voxels, weight_threshold=o.weight_threshold,
                       max_size=tuple(o.max_size) if o.max_size is not None else None,
                       keyframe_translation=o.keyframe_translation, keyframe_rotation_deg=o.keyframe_rotation_deg,
                       threads=o.threads)


def _build(frames: Iterator[PosedFrame], options: MapOptions) -> tuple[Any, PosedFrame | None, float, dict]:
    """(map, first frame, seconds from the first read to the extracted map, timing): timing splits the seconds into
    reading + decoding the bag's frames (with their camera_info and pose), integrating, and extracting."""
    tsdf = SemanticTSDF(tsdf_options(options))
    first = None
    t0 = time.perf_counter()
    read = integrate = 0.0
    it = iter(frames)
    while True:
        t1 = time.perf_counter()
        f = next(it, None)
        t2 = time.perf_counter()
        read += t2 - t1
        if f is None:
            break
        if first is None:
            first = f
        try:
            tsdf.integrate(f.depth, f.labels, f.K, f.T)
        except ValueError as e:
            raise BagError(f"frame stamped {f.stamp} ns: {e}") from None
        integrate += time.perf_counter() - t2
    if first is None:
        return None, None, 0.0, {}
    t3 = time.perf_counter()
    result = tsdf.extract()
    t4 = time.perf_counter()
    timing = {"read_decode_seconds": round(read, 3), "integrate_seconds": round(integrate, 3),
              "extract_seconds": round(t4 - t3, 3),
              "frames_per_second": round(tsdf.frames / (read + integrate), 2) if read + integrate > 0 else None}
    return result, first, t4 - t0, timing


def _save_map(folder: Path, prefix: str, result: Any) -> None:
    atomic_write_bytes(folder / f"{prefix}_mesh.ply",
                       ply_mesh_bytes(result.vertices, result.triangles, result.colors, result.labels))
    atomic_write_bytes(folder / f"{prefix}_points.ply",
                       ply_points_bytes(result.vertices, result.colors, result.labels, result.confidence))
    write_npz(folder / f"{prefix}_points.npz", points=result.vertices, labels=result.labels,
              confidence=result.confidence, colors=result.colors, triangles=result.triangles)


def find_scene_file(*bags: str | os.PathLike) -> Path | None:
    for b in bags:
        p = scene_file(b)
        if p.is_file():
            return p
    return None


def build_bag_maps(bag_path: str | os.PathLike, *, poses_bag: str | os.PathLike | None = None,
                   options: MapOptions = MapOptions()) -> dict[str, Any]:
    """The network map and (when the bag has ground truth and ``gt_map``) the ground-truth map of a bag:
    {"network": (MapResult, first PosedFrame, seconds, timing), "ground_truth": ... or None, "topics": {...}}
    (``_build``: seconds and timing)."""
    o = options
    if o.max_frames is not None and o.max_frames < 1:
        raise BagError(f"--max-frames must be >= 1, got {o.max_frames}")
    try:
        tsdf_options(o).check()
    except ValueError as e:
        raise BagError(f"map settings: {e}") from None
    with BagReader(bag_path) as bag:
        pose_reader = BagReader(poses_bag).open() if poses_bag is not None else bag
        try:
            where = locate(bag, pose_reader, o.namespace, o.gt_namespace)
            poses = read_pose_table(pose_reader, o.tf_topic)
            d, s = where.pred_topics()
            info = where.pred_info()
            net = _build(pose_frames(bag, "pred", d, s, info, poses, o.map_frame, o.max_frames), o)
            if net[0] is None:
                raise BagError(f"{bag.path}: no frame has both {d} and {s}")
            gt = None
            if o.gt_map and where.gt is not None:
                gd, gs = where.gt_topics()
                gt = _build(pose_frames(where.gt, "gt", gd, gs, where.gt_info(), poses, o.map_frame, o.max_frames), o)
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
        result, first, seconds, timing = entry
        # integrate_seconds: the whole build (read, decode, integrate, extract), as before; timing splits it
        rec: dict[str, Any] = {"frames": result.frames, "integrated_frames": result.integrated_frames,
                               "skipped_frames": result.skipped_frames, "vertices": int(len(result.vertices)),
                               "triangles": int(len(result.triangles)), "integrate_seconds": round(seconds, 3),
                               "timing": timing}
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


__all__ = ["MapOptions", "build_bag_maps", "find_scene_file", "format_map_summary", "run_map", "tsdf_options"]
