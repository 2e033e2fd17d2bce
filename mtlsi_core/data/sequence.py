"""Synthetic camera sequences: one persistent procedural room, a smooth camera trajectory through it, exact ground
truth per frame and the camera pose.

``make_sequence(SequenceSpec(seed, kind, frames, rate, size))`` draws a room (``mtlsi_core.data.scene``) and a
trajectory of the camera carrier ``kind``:

    ground     a ground robot: optical centre 0.3-0.6 m above the floor, 0.15-0.45 m/s, pitch -8..+4 degrees
    handheld   a walking person: 1.2-1.7 m, 0.3-0.8 m/s, pitch -28..-8 degrees, step bob ±2 cm at ~1.8 Hz, roll ±2.5°

The path is an ellipse (semi-axes 0.45-1.4 m, aspect 0.7-1) traversed at a constant angular rate, the camera looking
inwards across its centre at the far side of the room (a scan of the whole room over one loop) with a slow
sinusoidal pan; the yaw rate stays under the carrier's limit (the speed is
lowered on small ellipses). Every sampled pose is kept clear of the room's walls and furniture footprints (a
candidate path that is not is redrawn, and after ``MAX_PATH_TRIES`` failures the room is redrawn), so the result
depends only on the spec. Frame ``i`` is stamped ``i / rate`` seconds after the start.

Poses are ``T_map_cam`` (4x4): the camera optical frame (x right, y down, z forward) in the room's world frame
(``map``: z up, metres), i.e. ``p_map = R @ p_cam + t``; frames are rendered by ``mtlsi_core.data.synth.render`` with
the same ground truth as single frames (semseg, z-depth in metres, normals in the optical frame, boundaries).
``reference_cloud`` gives the ground-truth surface the sequence observes, from the ray caster's hit points in the
world frame (not through a pose convention), for scoring maps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import numpy as np

from mtlsi_core.data.scene import Scene, optical_rotation, sample_scene
from mtlsi_core.data.synth import SynthFrame, _check_size, kinect_intrinsics, render

KINDS = ("ground", "handheld")
MAX_PATH_TRIES = 300
MAX_SCENES = 20
WALL_CLEARANCE = 0.45  # m from the optical centre to a wall
OBJECT_CLEARANCE = 0.35  # m from the optical centre to a furniture footprint (xy)


@dataclass(frozen=True)
class Carrier:
    """Motion limits of a camera carrier."""

    height: tuple[float, float]  # m, optical centre above the floor (bob included)
    speed: tuple[float, float]  # m/s
    pitch_deg: tuple[float, float]
    max_yaw_rate_deg: float  # deg/s
    bob_amp: float  # m, vertical step bob
    bob_hz: float
    roll_amp_deg: float
    pan_amp_deg: float  # slow pan on top of the outward look
    pan_hz: float


CARRIERS: dict[str, Carrier] = {
    "ground": Carrier((0.3, 0.6), (0.15, 0.45), (-8.0, 4.0), 35.0, 0.004, 2.5, 0.4, 10.0, 0.08),
    "handheld": Carrier((1.2, 1.7), (0.3, 0.8), (-28.0, -8.0), 50.0, 0.02, 1.8, 2.5, 15.0, 0.1),
}


@dataclass(frozen=True)
class SequenceSpec:
    seed: int
    kind: str = "handheld"
    frames: int = 30
    rate: float = 15.0  # Hz
    size: tuple[int, int] = (240, 320)  # (H, W)

    def check(self) -> "SequenceSpec":
        if self.kind not in CARRIERS:
            raise ValueError(f"trajectory kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if int(self.frames) < 1:
            raise ValueError(f"a sequence needs at least one frame, got {self.frames}")
        if not (1.0 <= float(self.rate) <= 120.0):
            raise ValueError(f"rate must be within 1..120 Hz, got {self.rate}")
        if int(self.seed) < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        return replace(self, size=_check_size(self.size), frames=int(self.frames), seed=int(self.seed))


@dataclass
class Path:
    """An elliptic path and the camera's attitude along it (``pose(t)``)."""

    centre: np.ndarray  # (2,)
    a: float
    b: float
    phi: float  # ellipse rotation
    theta0: float
    omega: float  # rad/s, signed
    z0: float
    pitch: float  # rad
    look: float  # rad, yaw offset from the inward direction
    carrier: Carrier
    phase: tuple[float, float, float]  # bob, roll, pan

    def position(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, np.float64)
        th = self.theta0 + self.omega * t
        ex, ey = self.a * np.cos(th), self.b * np.sin(th)
        c, s = math.cos(self.phi), math.sin(self.phi)
        cr = self.carrier
        z = self.z0 + cr.bob_amp * np.sin(2 * math.pi * cr.bob_hz * t + self.phase[0])
        return np.stack([self.centre[0] + c * ex - s * ey, self.centre[1] + s * ex + c * ey, z], axis=-1)

    def yaw(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, np.float64)
        th = self.theta0 + self.omega * t
        # inward normal direction of the ellipse point (towards and across its centre), in the world
        inward = np.arctan2(self.a * np.sin(th), self.b * np.cos(th)) + self.phi + math.pi
        pan = math.radians(self.carrier.pan_amp_deg) * np.sin(2 * math.pi * self.carrier.pan_hz * t + self.phase[2])
        return inward + self.look + pan

    def pose(self, t: float) -> np.ndarray:
        """T_map_cam (4x4) at time ``t`` (s)."""
        cr = self.carrier
        yaw = float(self.yaw(np.float64(t)))
        roll = math.radians(cr.roll_amp_deg) * math.sin(2 * math.pi * cr.bob_hz / 2 * t + self.phase[1])
        return camera_pose(self.position(np.float64(t)), yaw, self.pitch, roll)


def camera_pose(position: np.ndarray, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """T_map_cam of an optical frame at ``position`` looking along (yaw, pitch) (world z up), rolled by ``roll``."""
    T = np.eye(4)
    T[:3, :3] = optical_rotation(yaw, pitch, roll)
    T[:3, 3] = position
    return T


def footprints(scene: Scene, min_height: float = 0.05) -> np.ndarray:
    """(N, 5) xy footprints of the scene's parts taller than ``min_height``: centre x, y, yaw, half x, half y."""
    rows = []
    for part in scene.parts:
        h = part.prim.half_extent_local()
        if 2 * float(h[2]) < min_height:  # floor mats
            continue
        rows.append([float(part.prim.center[0]), float(part.prim.center[1]), float(part.prim.yaw), float(h[0]),
                     float(h[1])])
    return np.array(rows, np.float64).reshape(-1, 5)


def clearance(points_xy: np.ndarray, room: np.ndarray, fps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance to the nearest wall, distance to the nearest footprint) of each xy point (vectorised)."""
    p = np.asarray(points_xy, np.float64).reshape(-1, 2)
    wall = np.minimum(np.minimum(p[:, 0], room[0] - p[:, 0]), np.minimum(p[:, 1], room[1] - p[:, 1]))
    if len(fps) == 0:
        return wall, np.full(len(p), np.inf)
    dx = p[:, None, 0] - fps[None, :, 0]
    dy = p[:, None, 1] - fps[None, :, 1]
    c, s = np.cos(fps[None, :, 2]), np.sin(fps[None, :, 2])
    lx, ly = np.abs(c * dx + s * dy) - fps[None, :, 3], np.abs(-s * dx + c * dy) - fps[None, :, 4]
    d = np.hypot(np.maximum(lx, 0.0), np.maximum(ly, 0.0))
    return wall, d.min(axis=1)


def _draw_path(rng: np.random.Generator, scene: Scene, carrier: Carrier, duration: float) -> Path | None:
    room = scene.room
    fps = footprints(scene)
    t_check = np.linspace(0.0, duration, max(8, int(duration * 20) + 1))
    for _ in range(MAX_PATH_TRIES):
        a = rng.uniform(0.45, min(1.4, 0.5 * float(min(room[0], room[1])) - WALL_CLEARANCE))
        if a < 0.45:
            return None
        b = a * rng.uniform(0.7, 1.0)
        centre = np.array([rng.uniform(a + WALL_CLEARANCE, room[0] - a - WALL_CLEARANCE),
                           rng.uniform(a + WALL_CLEARANCE, room[1] - a - WALL_CLEARANCE)])
        speed = rng.uniform(*carrier.speed)
        r_mean = 0.5 * (a + b)
        max_omega = math.radians(carrier.max_yaw_rate_deg) - math.radians(carrier.pan_amp_deg) * 2 * math.pi * \
            carrier.pan_hz
        # the normal direction of an ellipse turns up to a / b times faster than the angular parameter
        omega = min(speed / r_mean, max_omega * b / a) * (1 if rng.random() < 0.5 else -1)
        lo, hi = carrier.height
        z0 = rng.uniform(lo + carrier.bob_amp, hi - carrier.bob_amp)
        path = Path(centre, a, b, rng.uniform(-math.pi, math.pi), rng.uniform(-math.pi, math.pi), omega, z0,
                    math.radians(rng.uniform(*carrier.pitch_deg)), rng.normal(0.0, 0.25), carrier,
                    tuple(rng.uniform(0, 2 * math.pi, 3)))
        xy = path.position(t_check)[:, :2]
        wall, obj = clearance(xy, room, fps)
        if wall.min() >= WALL_CLEARANCE and obj.min() >= OBJECT_CLEARANCE:
            return path
    return None


@dataclass
class CameraSequence:
    spec: SequenceSpec
    scene: Scene
    path: Path
    K: np.ndarray  # (3, 3)
    times: np.ndarray  # (N,) seconds from the first frame
    poses: np.ndarray  # (N, 4, 4) T_map_cam

    def __len__(self) -> int:
        return len(self.times)

    def render(self, index: int) -> SynthFrame:
        """Frame ``index`` with its exact ground truth (the room is the same for every frame)."""
        T = self.poses[index]
        scene = replace(self.scene, cam_pos=T[:3, 3].copy(), R_wc=T[:3, :3].copy())
        rng = np.random.default_rng(np.random.SeedSequence([self.spec.seed, 2, int(index)]))
        return render(scene, self.K, self.spec.size, rng)

    def frames(self) -> Iterator[SynthFrame]:
        for i in range(len(self)):
            yield self.render(i)


def make_sequence(spec: SequenceSpec) -> CameraSequence:
    """The room, trajectory and intrinsics of ``spec`` (frames are rendered on demand: ``render(i)``)."""
    spec = spec.check()
    carrier = CARRIERS[spec.kind]
    duration = (spec.frames - 1) / spec.rate
    for attempt in range(MAX_SCENES):
        rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 1, attempt]))
        scene = sample_scene(rng)
        path = _draw_path(rng, scene, carrier, duration)
        if path is not None:
            break
    else:
        raise RuntimeError(f"sequence seed {spec.seed}: no collision-free {spec.kind} path in {MAX_SCENES} rooms")
    times = np.arange(spec.frames, dtype=np.float64) / spec.rate
    poses = np.stack([path.pose(float(t)) for t in times])
    return CameraSequence(spec, scene, path, kinect_intrinsics(spec.size), times, poses)


def backproject(depth: np.ndarray, K: np.ndarray, T_map_cam: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(points (M, 3), flat pixel indices (M,)) of the valid (finite, > 0) depth pixels, in the camera frame or,
    with ``T_map_cam``, in the map frame. Depth is along the optical z axis."""
    h, w = depth.shape
    d = depth.reshape(-1).astype(np.float64)
    idx = np.flatnonzero(np.isfinite(d) & (d > 0))
    v, u = np.divmod(idx, w)
    z = d[idx]
    pts = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1)
    if T_map_cam is not None:
        pts = pts @ T_map_cam[:3, :3].T + T_map_cam[:3, 3]
    return pts, idx


def voxel_keys(points: np.ndarray, voxel: float) -> np.ndarray:
    """int64 keys of the voxel (side ``voxel``, nearest grid point) of each point (21 bits per axis)."""
    q = np.round(np.asarray(points, np.float64) / voxel).astype(np.int64) + (1 << 20)
    return (q[:, 0] << 42) | (q[:, 1] << 21) | q[:, 2]


def reference_cloud(seq: CameraSequence, voxel: float = 0.01, frames: Sequence[int] | None = None) -> dict:
    """The ground-truth surface observed by the sequence: world-frame hit points of the ray caster, one per
    ``voxel`` cell, with the class label of the first hit and the smallest depth it was seen at.

    Returns {"points" (M, 3) float32, "labels" (M,) uint8 (255 unlabelled), "min_depth" (M,) float32}."""
    pts_all, lab_all, dep_all = [], [], []
    for i in (range(len(seq)) if frames is None else frames):
        f = seq.render(int(i))
        T = seq.poses[int(i)]
        # hit points straight from the caster's rays: o + t * R @ ((u - cx) / fx, (v - cy) / fy, 1)
        pts, idx = backproject(f.depth, f.K, T)
        pts_all.append(pts)
        lab_all.append(f.semseg.reshape(-1)[idx])
        dep_all.append(f.depth.reshape(-1)[idx])
    pts = np.concatenate(pts_all)
    lab = np.concatenate(lab_all)
    dep = np.concatenate(dep_all).astype(np.float32)
    keys = voxel_keys(pts, voxel)
    order = np.lexsort((dep, keys))  # per voxel: the point seen closest first
    keys, pts, lab, dep = keys[order], pts[order], lab[order], dep[order]
    first = np.ones(len(keys), bool)
    first[1:] = keys[1:] != keys[:-1]
    return {"points": pts[first].astype(np.float32), "labels": lab[first].astype(np.uint8),
            "min_depth": dep[first]}


__all__ = ["CARRIERS", "KINDS", "CameraSequence", "Carrier", "Path", "SequenceSpec", "backproject", "camera_pose",
           "clearance", "footprints", "make_sequence", "reference_cloud", "voxel_keys"]
