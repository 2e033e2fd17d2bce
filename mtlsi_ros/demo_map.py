"""The demo's map step: a short camera trajectory through one synthetic room goes through the running node, and its
depth and segmentation answers are fused into a semantic 3D map (``mtlsi_core.mapping``), drawn beside the map of the
ground truth.

The frames (``mtlsi_core.data.sequence``; by default a ground robot in a ``nyud`` room, the rooms the shipped model
was trained on) are published with their camera_info like the demo's other frames; each answer is paired with its
frame's pose by stamp and integrated with the node's ``output/camera_info`` (the intrinsics scaled to the output, as
a mapping stack would use them). A ground robot's camera pose is its base's pose on the floor composed with the
camera's fixed mount (T_map_base @ T_base_cam, what tf2 gives a robot's mapping stack from /tf and /tf_static).
``prepare_sequence`` draws and renders the frames; the demo runs it in a worker process while it does its other
steps, so the nyud rooms' slower rendering costs it little time. Writes ``<out>/map.png`` (top-down and first-pose
views: network | ground truth) and returns the scores against the scene's surface.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

MAP_KINDS = ("ground", "handheld")


def prepare_sequence(seed: int, frames: int = 24, rate: float = 10.0, size: tuple[int, int] = (240, 320),
                     kind: str = "ground", profile: str = "nyud") -> dict[str, Any]:
    """The sequence of the map step, its rendered frames, the camera poses to map with and the reference surface
    (picklable: it may run in a worker process)."""
    from mtlsi_core.data.sequence import SequenceSpec, make_sequence, reference_cloud

    t0 = time.monotonic()
    seq = make_sequence(SequenceSpec(seed=seed, kind=kind, frames=frames, rate=rate, size=size, profile=profile))
    rendered = [seq.render(i) for i in range(len(seq))]
    ref = reference_cloud(seq)
    if seq.mount is not None:  # a robot: the base's pose on the floor, then the camera's fixed mount
        poses = seq.base_poses @ seq.mount.T_base_cam()
    else:
        poses = seq.poses
    seq.shadow_maps.clear()  # rendering is done: nothing to carry back
    return {"seq": seq, "frames": rendered, "poses": poses, "reference": ref,
            "render_seconds": round(time.monotonic() - t0, 1)}


class SequenceJob:
    """``prepare_sequence(**kwargs)`` in a worker process (``mtlsi_core.data.io.worker_context``: never a plain fork
    of a process with DDS threads): ``result()`` waits for it, ``close()`` stops it if it still runs."""

    def __init__(self, **kwargs: Any):
        from mtlsi_core.data.io import worker_context

        ctx = worker_context()
        self.kwargs = kwargs
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_prepare_into, args=(send, kwargs), name="demo_map_frames", daemon=True)
        self._proc.start()
        send.close()  # the worker holds the only sending end: its exit is an end of file here

    def result(self, timeout: float = 900.0) -> dict[str, Any]:
        if not self._recv.poll(timeout):
            raise RuntimeError(f"the map's frames ({self.kwargs}) were not ready within {timeout:.0f} s")
        try:
            ok, value = self._recv.recv()
        except EOFError:
            self._proc.join(5)
            raise RuntimeError(f"the process rendering the map's frames exited (status {self._proc.exitcode}) "
                               f"without them") from None
        if not ok:
            raise RuntimeError(f"the map's frames ({self.kwargs}) could not be made: {value}")
        return value

    def close(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join(10)
        self._recv.close()


def _prepare_into(conn: Any, kwargs: dict[str, Any]) -> None:
    from mtlsi_core.data.io import limit_cv2_threads

    limit_cv2_threads()
    try:
        value: tuple[bool, Any] = (True, prepare_sequence(**kwargs))
    except Exception as e:  # noqa: BLE001 - reported by SequenceJob.result in the demo's process
        value = (False, f"{type(e).__name__}: {' '.join(str(e).split())}")
    conn.send(value)
    conn.close()


def run_sequence_map(client: Any, out: Path, frame_id: str, *, seed: int, frames: int = 24, rate: float = 10.0,
                     size: tuple[int, int] = (240, 320), timeout: float = 60.0, kind: str = "ground",
                     profile: str = "nyud", prepared: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stream the sequence to the node through ``client``, map its answers; returns a summary (scores, paths).
    ``prepared``: ``prepare_sequence``'s result for the same arguments (else it is made here)."""
    from mtlsi_core.mapping.io import write_png
    from mtlsi_core.mapping.metrics import score_map
    from mtlsi_core.mapping.render import map_views, side_by_side, stack_rows
    from mtlsi_core.mapping.tsdf import SemanticTSDF, TSDFOptions
    from mtlsi_ros.client import stamp_to_ns
    from mtlsi_ros.conversions import image_to_numpy

    t0 = time.monotonic()
    if prepared is None:
        prepared = prepare_sequence(seed, frames, rate, size, kind, profile)
    seq, rendered, poses, ref = prepared["seq"], prepared["frames"], prepared["poses"], prepared["reference"]
    sp = seq.spec
    if (sp.seed, sp.frames, sp.kind, sp.profile, tuple(sp.size)) != (seed, frames, kind, profile, tuple(size)):
        raise ValueError(f"demo map: the prepared sequence is {sp}, not seed {seed}, {frames} frames, {kind}, "
                         f"{profile}, {size[0]}x{size[1]}")
    pose_of: dict[int, int] = {}
    headers = []
    period, next_t = 1.0 / rate, time.monotonic()
    for i, f in enumerate(rendered):
        time.sleep(max(0.0, next_t - time.monotonic()))
        next_t += period
        h = client.publish(f.image, frame_id=frame_id, k=f.K)
        pose_of[stamp_to_ns(h.stamp)] = i
        headers.append(h)
    opts = TSDFOptions()
    net, gt = SemanticTSDF(opts), SemanticTSDF(opts)
    for h in headers:
        got = client.wait_for(h, timeout=timeout, topics=["depth", "segmentation", "output/camera_info"])
        depth_msg = got["depth"].msg
        i = pose_of[stamp_to_ns(depth_msg.header.stamp)]  # paired by the answer's own stamp
        K = np.asarray(got["output/camera_info"].msg.k, np.float64).reshape(3, 3)
        net.integrate(image_to_numpy(depth_msg), image_to_numpy(got["segmentation"].msg), K, poses[i])
        f = rendered[i]
        gt.integrate(f.depth, f.semseg, f.K, poses[i])
    keep = ref["min_depth"] <= opts.depth_max
    results, scores = {}, {}
    for name, tsdf in (("network", net), ("ground_truth", gt)):
        res = results[name] = tsdf.extract()
        scores[name] = score_map(res.vertices, res.triangles, res.labels, ref["points"][keep], ref["labels"][keep])
    views = map_views(list(results.values()), seq.K, poses[0], size)
    titles = ["network (node's depth + labels)", "ground truth (upper bound)"]
    path = out / "map.png"
    write_png(path, stack_rows([side_by_side([v[0] for v in views], [t + ", top-down" for t in titles]),
                                side_by_side([v[1] for v in views], [t + ", first pose" for t in titles])]))
    return {"frames": frames, "size": list(size), "rate_hz": rate, "seed": seed, "kind": kind, "profile": profile,
            "room_type": seq.room_type, "mount": None if seq.mount is None else seq.mount.as_dict(),
            "scores": scores, "picture": str(path), "render_seconds": prepared.get("render_seconds"),
            "seconds": round(time.monotonic() - t0, 1)}


def summary_lines(m: dict[str, Any]) -> list[str]:
    room = f"a {m.get('profile', 'basic')} {m.get('room_type', 'room')}"
    mount = m.get("mount")
    if mount:
        room += (f", camera mount {mount['height_m']:.2f} m high, pitch {mount['pitch_deg']:+.1f} deg (down), "
                 f"roll {mount['roll_deg']:+.1f} deg")
    lines = [f"map of a {m['frames']}-frame {m['kind']} sequence ({room}) at {m['size'][0]}x{m['size'][1]} "
             f"(Open3D TSDF, 4 cm):"]
    for name, s in m["scores"].items():
        lines.append(f"  {name:12s} accuracy {s['accuracy_m']:.3f} m, completeness {s['completeness_m']:.3f} m, "
                     f"F@5cm {s['fscore'] * 100:5.1f} %, semantic accuracy {s['semantic_accuracy'] * 100:5.1f} %")
    lines.append(f"map picture: {m['picture']}")
    return lines


__all__ = ["MAP_KINDS", "SequenceJob", "prepare_sequence", "run_sequence_map", "summary_lines"]
