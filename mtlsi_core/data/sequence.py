"""Synthetic camera sequences: one persistent procedural room, a smooth camera trajectory through it, exact ground
truth per frame and the camera pose.

``make_sequence(SequenceSpec(seed, kind, frames, rate, size, profile))`` draws a room and a trajectory of the camera
carrier ``kind``. The room is the one the single-frame generator's ``profile`` draws (``synth.sample_profile_scene``):
``basic`` (``mtlsi_core.data.scene``, the default, unchanged) or ``nyud`` (``mtlsi_core.data.rooms``: NYUDv2's room
types with their furniture and clutter, the rooms the shipped model was trained on); frames are rendered as that
profile renders single frames (``synth.render`` / ``synth.render_nyud``: for ``nyud`` cast shadows, ambient
occlusion, 3 x 3 supersampling and the camera model, with one camera, ``render.sensor.SensorParams``, drawn per
sequence, the sensor noise per frame, and the room's shadow maps computed once per sequence):

    ground     a ground robot: a camera on a fixed mount (``Mount``: optical centre 0.3-0.6 m above the floor,
               pitch -4..+8 degrees down, roll within +-1 degree, 0.05-0.2 m ahead of base_link's origin, all drawn
               per seed and constant over the sequence); only the base moves, on the floor (z = 0), turning about
               its vertical axis: T_map_cam = T_map_base @ T_base_cam; 0.15-0.45 m/s
    handheld   a walking person: 1.2-1.7 m, 0.3-0.8 m/s, pitch -28..-8 degrees, step bob +-2 cm at ~1.8 Hz, roll +-2.5

The optical centre's path is an ellipse (semi-axes 0.45-1.4 m, aspect 0.7-1; smaller, down to 0.25 m, only where
the room is too narrow for 0.45 m) traversed at a constant angular rate, the camera looking inwards across its
centre at the far side of the room (a scan of the whole room over one loop) with a slow sinusoidal pan; the yaw
rate stays under the carrier's limit (the speed is lowered on small ellipses). The ground robot's base follows the
same path behind its camera (it turns with the camera, so it drives partly sideways: a holonomic base). Every
sampled pose is kept clear of the room's walls and furniture footprints (``clearance``; parts hanging above every
camera, e.g. ceiling lights, are not obstacles in nyud rooms; the robot's base keeps ``BASE_CLEARANCE`` too): a
candidate path that is not is redrawn, and after ``MAX_PATH_TRIES`` failures the room is redrawn (the next room of
the seed's stream, at most ``MAX_SCENES``), so the result depends only on the spec. Frame ``i`` is stamped
``i / rate`` seconds after the start.

Poses are ``T_map_cam`` (4x4): the camera optical frame (x right, y down, z forward) in the room's world frame
(``map``: z up, metres, the floor at z = 0), i.e. ``p_map = R @ p_cam + t``; ground robots also have
``base_poses`` (``T_map_base``, base_link: x forward, y left, z up, REP 103) and ``mount`` (``Mount.T_base_cam``).
The ground truth is that of single frames (semseg, z-depth in metres, normals in the optical frame, boundaries),
from the exact cast. ``reference_cloud`` gives the ground-truth surface the sequence observes, from the ray caster's
hit points in the world frame (not through a pose convention), for scoring maps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

import numpy as np

from mtlsi_core.data.scene import Scene, optical_rotation
from mtlsi_core.data.synth import (PROFILES, Cast, SynthFrame, _check_size, cast, check_profile, kinect_intrinsics,
                                   render_profile, sample_profile_scene)

KINDS = ("ground", "handheld")
MAX_PATH_TRIES = 300
MAX_SCENES = 20
WALL_CLEARANCE = 0.45  # m from the optical centre to a wall
OBJECT_CLEARANCE = 0.35  # m from the optical centre to a furniture footprint (xy)
BASE_CLEARANCE = 0.2  # m from a ground robot's base_link origin to a wall or a footprint (its body)
MIN_SEMI_AXIS = 0.45  # m, smallest ellipse semi-axis where the room allows it
MIN_SEMI_AXIS_NARROW = 0.25  # m, smallest in rooms too narrow for MIN_SEMI_AXIS (small bathrooms)
OBSTACLE_MAX_BOTTOM = 2.0  # m: nyud parts whose bottom is higher (ceiling lights) hang above every camera


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
    mounted: bool = False  # a robot: height, pitch and roll fixed per sequence (``Mount``), no bob
    forward: tuple[float, float] = (0.0, 0.0)  # m, mounted: optical centre ahead of the base's origin


CARRIERS: dict[str, Carrier] = {
    # ground: roll_amp_deg bounds the mount's constant roll; pitch_deg in this module's sign (< 0: looking down)
    "ground": Carrier((0.3, 0.6), (0.15, 0.45), (-8.0, 4.0), 35.0, 0.0, 0.0, 1.0, 10.0, 0.08, True, (0.05, 0.2)),
    "handheld": Carrier((1.2, 1.7), (0.3, 0.8), (-28.0, -8.0), 50.0, 0.02, 1.8, 2.5, 15.0, 0.1),
}


@dataclass(frozen=True)
class Mount:
    """A ground robot's camera mount, fixed over a sequence: the static transform base_link -> the optical frame.

    base_link (REP 103): on the floor under the robot's centre, x forward, y left, z up. The signs are those of
    ``mtlsi_core.anchoring.CameraMount`` (the camera body's attitude on a level robot):

        height_m   the optical centre above the floor, metres
        pitch_deg  > 0 tilts the view DOWN towards the floor
        roll_deg   > 0 lowers the camera's right side (image x) and lifts its left one
        forward_m  the optical centre ahead of base_link's origin, along base_link x (no lateral offset, no yaw)
    """

    height_m: float
    pitch_deg: float
    roll_deg: float
    forward_m: float = 0.0

    def T_base_cam(self) -> np.ndarray:
        """T_base_cam (4x4): the optical frame in base_link (``p_base = R @ p_cam + t``)."""
        T = np.eye(4)
        T[:3, :3] = optical_rotation(0.0, -math.radians(self.pitch_deg), math.radians(self.roll_deg))
        T[:3, 3] = (self.forward_m, 0.0, self.height_m)
        return T

    def as_dict(self) -> dict[str, float]:
        return {"height_m": float(self.height_m), "pitch_deg": float(self.pitch_deg),
                "roll_deg": float(self.roll_deg), "forward_m": float(self.forward_m)}


def base_pose(xy: np.ndarray, yaw: float) -> np.ndarray:
    """T_map_base (4x4) of a base on the floor (z = 0) at ``xy`` heading ``yaw`` (its x axis, radians from map x)."""
    T = np.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    T[:2, :2] = [[c, -s], [s, c]]
    T[:2, 3] = xy
    return T


@dataclass(frozen=True)
class SequenceSpec:
    seed: int
    kind: str = "handheld"
    frames: int = 30
    rate: float = 15.0  # Hz
    size: tuple[int, int] = (240, 320)  # (H, W)
    profile: str = "basic"  # rooms and rendering of the single-frame generator's profile (synth.PROFILES)

    def check(self) -> "SequenceSpec":
        if self.kind not in CARRIERS:
            raise ValueError(f"trajectory kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        check_profile(self.profile)
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
    mount: Mount | None = None  # mounted carriers: the fixed mount (its height is z0, its pitch -pitch)

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

    def base_pose(self, t: float) -> np.ndarray:
        """T_map_base (4x4) at time ``t`` (s) of a mounted carrier: the base on the floor, ``mount.forward_m``
        behind the optical centre, heading the camera's yaw."""
        if self.mount is None:
            raise ValueError("a handheld camera has no base: base_pose is for mounted carriers (ground)")
        yaw = float(self.yaw(np.float64(t)))
        cam = self.position(np.float64(t))
        return base_pose(cam[:2] - self.mount.forward_m * np.array([math.cos(yaw), math.sin(yaw)]), yaw)

    def pose(self, t: float) -> np.ndarray:
        """T_map_cam (4x4) at time ``t`` (s); mounted carriers: T_map_base @ T_base_cam."""
        if self.mount is not None:
            return self.base_pose(t) @ self.mount.T_base_cam()
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


def footprints(scene: Scene, min_height: float = 0.05, max_bottom: float | None = None) -> np.ndarray:
    """(N, 5) xy footprints of the scene's parts taller than ``min_height`` (and, with ``max_bottom``, whose bottom
    is not above it): centre x, y, yaw, half x, half y."""
    rows = []
    for part in scene.parts:
        h = part.prim.half_extent_local()
        if 2 * float(h[2]) < min_height:  # floor mats
            continue
        if max_bottom is not None and float(part.prim.center[2]) - float(h[2]) > max_bottom:  # ceiling lights
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


def obstacles(scene: Scene, profile: str) -> np.ndarray:
    """The footprints a trajectory keeps clear of: every part's (``basic``), those within reach of a camera
    (``nyud``: not the ceiling lights)."""
    return footprints(scene) if profile == "basic" else footprints(scene, max_bottom=OBSTACLE_MAX_BOTTOM)


def _draw_path(rng: np.random.Generator, scene: Scene, carrier: Carrier, duration: float,
               fps: np.ndarray | None = None) -> Path | None:
    room = scene.room
    fps = footprints(scene) if fps is None else fps
    t_check = np.linspace(0.0, duration, max(8, int(duration * 20) + 1))
    a_max = min(1.4, 0.5 * float(min(room[0], room[1])) - WALL_CLEARANCE)
    if a_max < MIN_SEMI_AXIS_NARROW:
        return None
    a_min = min(MIN_SEMI_AXIS, a_max)  # MIN_SEMI_AXIS wherever it fits (every basic room)
    for _ in range(MAX_PATH_TRIES):
        a = rng.uniform(a_min, a_max)
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
        if carrier.mounted:  # drawn after the rest: a handheld path's draws are those of before mounts existed
            path.mount = Mount(float(z0), -math.degrees(path.pitch),
                               float(rng.uniform(-carrier.roll_amp_deg, carrier.roll_amp_deg)),
                               float(rng.uniform(*carrier.forward)))
        xy = path.position(t_check)[:, :2]
        wall, obj = clearance(xy, room, fps)
        if not (wall.min() >= WALL_CLEARANCE and obj.min() >= OBJECT_CLEARANCE):
            continue
        if path.mount is not None:
            yaw = path.yaw(t_check)
            base = xy - path.mount.forward_m * np.stack([np.cos(yaw), np.sin(yaw)], axis=-1)
            wall, obj = clearance(base, room, fps)
            if not (wall.min() >= BASE_CLEARANCE and obj.min() >= BASE_CLEARANCE):
                continue
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
    base_poses: np.ndarray | None = None  # (N, 4, 4) T_map_base of a mounted carrier (ground), else None
    camera: Any = None  # nyud: the sequence's camera (render.sensor.SensorParams), else None
    shadow_maps: dict = field(default_factory=dict, repr=False)  # nyud: the room's shadow maps, filled on use

    def __len__(self) -> int:
        return len(self.times)

    @property
    def mount(self) -> Mount | None:
        """The ground robot's fixed mount (T_base_cam), None for a handheld camera."""
        return self.path.mount

    @property
    def room_type(self) -> str:
        """The nyud room type (bedroom, kitchen, ...), or "basic"."""
        return str(getattr(self.scene, "room_type", "basic"))

    def _view(self, index: int) -> Scene:
        T = self.poses[index]
        return replace(self.scene, cam_pos=T[:3, 3].copy(), R_wc=T[:3, :3].copy())

    def render(self, index: int) -> SynthFrame:
        """Frame ``index`` with its exact ground truth (the room is the same for every frame), rendered as the
        spec's profile renders single frames."""
        rng = np.random.default_rng(np.random.SeedSequence([self.spec.seed, 2, int(index)]))
        if self.spec.profile == "nyud":
            return render_profile(self._view(index), self.K, self.spec.size, rng, "nyud", params=self.camera,
                                  shadow_maps=self.shadow_maps)
        return render_profile(self._view(index), self.K, self.spec.size, rng)

    def geometry(self, index: int) -> Cast:
        """The exact cast of frame ``index`` (depth, labels, normals: ``render``'s ground truth) without its image."""
        return cast(self._view(index), self.K, self.spec.size)

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
        scene = sample_profile_scene(rng, spec.profile)
        path = _draw_path(rng, scene, carrier, duration, obstacles(scene, spec.profile))
        if path is not None:
            break
    else:
        raise RuntimeError(f"sequence seed {spec.seed}: no collision-free {spec.kind} path in {MAX_SCENES} "
                           f"{spec.profile} rooms")
    times = np.arange(spec.frames, dtype=np.float64) / spec.rate
    base = None
    if path.mount is not None:
        base = np.stack([path.base_pose(float(t)) for t in times])
        poses = base @ path.mount.T_base_cam()
    else:
        poses = np.stack([path.pose(float(t)) for t in times])
    camera = None
    if spec.profile == "nyud":  # one camera records the whole sequence (single frames draw one each)
        from mtlsi_core.data.render.sensor import SensorParams

        camera = SensorParams.sample(np.random.default_rng(np.random.SeedSequence([spec.seed, 4])))
    return CameraSequence(spec, scene, path, kinect_intrinsics(spec.size), times, poses, base, camera)


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
        f = seq.geometry(int(i))  # the frames' exact ground truth, without shading them
        T = seq.poses[int(i)]
        # hit points straight from the caster's rays: o + t * R @ ((u - cx) / fx, (v - cy) / fy, 1)
        pts, idx = backproject(f.depth, seq.K, T)
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


__all__ = ["CARRIERS", "KINDS", "PROFILES", "CameraSequence", "Carrier", "Mount", "Path", "SequenceSpec",
           "backproject", "base_pose", "camera_pose", "clearance", "footprints", "make_sequence", "obstacles",
           "reference_cloud", "voxel_keys"]
