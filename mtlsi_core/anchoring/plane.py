"""The floor plane in the camera optical frame, from the camera's static mount, and each pixel's floor depth.

Frames. The camera optical frame (REP 103 / 105, the frame of the network's depth and normals): x right, y down, z
forward. The mount is given as the camera body's attitude (REP 103 ``camera_link``: x forward, y left, z up) on a
level robot, i.e. the roll and pitch of a static transform base_link -> camera_link whose base_link z points up:

    height_m   the optical centre above the floor, metres (> 0: a camera below the floor sees no floor)
    pitch_deg  rotation about the body's y (left) axis: > 0 tilts the view DOWN towards the floor (REP 103 sign)
    roll_deg   rotation about the body's x (forward) axis: > 0 lifts the camera's left side and lowers its right
               one (clockwise seen from behind), so the horizon in the image rises to the right

Yaw does not change the floor. World up in the body frame is R_y(p)^T R_x(r)^T-rotated z:
u_body = (-sin p, sin r cos p, cos r cos p), and in the optical frame (x_opt = -y_body, y_opt = -z_body,
z_opt = x_body):

    n = (-sin r cos p, -cos r cos p, -sin p)          # the floor's unit normal (up), optical frame

The floor is { X : n . X + d = 0 } with d = height_m. A pixel (u, v) of a pinhole K has the ray
r = ((u - cx - s y_n) / fx, y_n, 1), y_n = (v - cy) / fy (z = 1), so its floor point X = z r gives

    z_floor(u, v) = -d / (n . r)        where n . r < 0 (below the horizon), else no floor (NaN)

and n . r = n_x x_n(u) + (n_y - n_x s / fx) y_n(v) + n_z is a sum of a per-column and a per-row term (one outer
sum per image, no per-pixel trigonometry).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

MAX_PITCH_DEG = 90.0  # |pitch| must stay below: at 90 the camera looks straight down or up (roll is then yaw)
HORIZON_EPS = 1e-6  # n . r must be below -HORIZON_EPS for a floor hit (rays at the horizon meet it at infinity)


def _finite_number(value: object, what: str) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"camera mount: {what} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"camera mount: {what} must be finite, got {value!r}")
    return v


class MountError(ValueError):
    """An impossible mount: which field, its value and why (the node names its parameter from ``field``)."""

    def __init__(self, field: str, value: float, reason: str):
        super().__init__(f"camera mount: {field} = {value} {reason}")
        self.field, self.value, self.reason = field, value, reason


@dataclass(frozen=True)
class CameraMount:
    """A camera's static mount on a level robot (module docstring for the signs); validated on construction."""

    height_m: float
    pitch_deg: float = 0.0
    roll_deg: float = 0.0

    def __post_init__(self) -> None:
        h = _finite_number(self.height_m, "height_m (optical centre above the floor, metres)")
        p = _finite_number(self.pitch_deg, "pitch_deg")
        r = _finite_number(self.roll_deg, "roll_deg")
        if h <= 0:
            raise MountError("height_m", h, "puts the camera on or below the floor; it must be the optical centre's "
                                            "height above the floor, > 0 metres")
        if abs(p) >= MAX_PITCH_DEG:
            raise MountError("pitch_deg", p, f"must be within (-{MAX_PITCH_DEG:g}, {MAX_PITCH_DEG:g}) degrees (> 0 "
                                             f"tilts the view down)")
        object.__setattr__(self, "height_m", h)
        object.__setattr__(self, "pitch_deg", p)
        object.__setattr__(self, "roll_deg", r)

    def describe(self) -> str:
        return f"height {self.height_m:.3f} m, pitch {self.pitch_deg:+.2f} deg, roll {self.roll_deg:+.2f} deg"


def check_intrinsics(k: Sequence[float] | np.ndarray) -> np.ndarray:
    kk = np.asarray(k, dtype=np.float64).reshape(-1)
    if kk.size != 9 or not np.all(np.isfinite(kk)):
        raise ValueError(f"intrinsics K must be 9 finite values (3x3), got {np.asarray(k).tolist()!r}")
    if not (kk[0] > 0 and kk[4] > 0):
        raise ValueError(f"intrinsics K needs positive focal lengths, got fx={kk[0]}, fy={kk[4]}")
    return kk


@dataclass(frozen=True)
class FloorPlane:
    """The floor { X : normal . X + offset = 0 } in the camera optical frame: ``normal`` the unit up vector,
    ``offset`` the camera's height above the floor (metres, > 0)."""

    normal: tuple[float, float, float]
    offset: float

    @classmethod
    def from_mount(cls, mount: CameraMount) -> "FloorPlane":
        """n = (-sin r cos p, -cos r cos p, -sin p), d = height (module docstring)."""
        p, r = math.radians(mount.pitch_deg), math.radians(mount.roll_deg)
        n = (-math.sin(r) * math.cos(p), -math.cos(r) * math.cos(p), -math.sin(p))
        return cls(n, mount.height_m)

    @classmethod
    def from_pose(cls, T_floor_cam: np.ndarray) -> "FloorPlane":
        """From the optical frame's pose in a frame whose z is up and whose z = 0 is the floor (``p_floor =
        R p_cam + t``): n = R^T e_z (up in the optical frame), d = t_z."""
        T = np.asarray(T_floor_cam, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError(f"T_floor_cam must be a finite 4x4 matrix, got shape {T.shape}")
        n = T[:3, :3].T @ np.array([0.0, 0.0, 1.0])
        norm = float(np.linalg.norm(n))
        if not abs(norm - 1.0) < 1e-3:
            raise ValueError(f"T_floor_cam's rotation is not a rotation (|R^T e_z| = {norm})")
        if not T[2, 3] > 0:
            raise ValueError(f"T_floor_cam puts the camera on or below the floor (height {T[2, 3]} m)")
        return cls(tuple(float(v) for v in n / norm), float(T[2, 3]))

    def mount(self) -> CameraMount:
        """The mount of this plane (the inverse of ``from_mount``): p = asin(-n_z), r = atan2(-n_x, -n_y)."""
        nx, ny, nz = self.normal
        return CameraMount(self.offset, math.degrees(math.asin(max(-1.0, min(1.0, -nz)))),
                           math.degrees(math.atan2(-nx, -ny)))

    def ray_terms(self, k: Sequence[float] | np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(per-column (W,), per-row (H,)) float64 terms whose outer sum is n . r for every pixel (z = 1 rays)."""
        kk = check_intrinsics(k)
        fx, s, cx, fy, cy = kk[0], kk[1], kk[2], kk[4], kk[5]
        h, w = int(hw[0]), int(hw[1])
        nx, ny, nz = self.normal
        col = nx * (np.arange(w, dtype=np.float64) - cx) / fx + nz  # n_x x_n(u) + n_z
        row = (ny - nx * s / fx) * (np.arange(h, dtype=np.float64) - cy) / fy  # (n_y - n_x s / fx) y_n(v)
        return col, row

    def depth(self, k: Sequence[float] | np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        """(H, W) float32 depth along optical z of the floor seen through each pixel of an image of ``hw`` with
        intrinsics ``k`` (at that size): z = -d / (n . r) below the horizon, NaN at and above it."""
        col, row = self.ray_terms(k, hw)
        nr = row[:, None] + col[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(nr < -HORIZON_EPS, -self.offset / nr, np.nan)
        return z.astype(np.float32)

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Signed height above the floor of (..., 3) optical-frame points: n . X + d (0 on the floor)."""
        return np.asarray(points, dtype=np.float64) @ np.asarray(self.normal) + self.offset


def fit_floor_plane(depth: np.ndarray, floor: np.ndarray, k: Sequence[float] | np.ndarray, seed: int = 0,
                    tries: int = 300, tolerance_m: float = 0.02) -> FloorPlane:
    """The floor plane of a depth map's ``floor`` pixels (e.g. ground-truth depth where the ground-truth labels say
    floor), in the optical frame of a pinhole ``k`` (3x3, at the depth's size): RANSAC (``tries`` planes through 3
    random points, inliers within ``tolerance_m``) then least squares (SVD) on the best inlier set, the normal
    turned up (-y in the optical frame). Stands in for a known mount (``.mount()`` gives it). ValueError when the
    floor has too few valid pixels (< 3), is degenerate (no plane through 3 of them) or puts the camera on or below
    it."""
    kk = check_intrinsics(k).reshape(3, 3)
    d = np.asarray(depth, dtype=np.float64)
    m = np.asarray(floor, dtype=bool)
    if m.shape != d.shape[:2]:
        raise ValueError(f"floor fit: floor mask {m.shape} and depth {d.shape} differ in size")
    m = m & np.isfinite(d) & (d > 0)
    v, u = np.nonzero(m)
    if v.size < 3:
        raise ValueError(f"floor fit: {v.size} valid floor pixels; at least 3 needed")
    z = d[m]
    X = np.stack([(u - kk[0, 2] - kk[0, 1] * (v - kk[1, 2]) / kk[1, 1]) / kk[0, 0] * z,
                  (v - kk[1, 2]) / kk[1, 1] * z, z], axis=1)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(int(tries)):
        a, b, c = X[rng.choice(len(X), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-9:
            continue
        n /= np.linalg.norm(n)
        inl = np.abs(X @ n - n @ a) < tolerance_m
        if best is None or inl.sum() > best.sum():
            best = inl
    if best is None or best.sum() < 3:
        raise ValueError("floor fit: no plane through the floor pixels (degenerate: collinear or repeated points)")
    P = X[best]
    c = P.mean(axis=0)
    n = np.linalg.svd(P - c, full_matrices=False)[2][2]
    n = -n if n[1] > 0 else n  # up is -y in the optical frame
    offset = float(-n @ c)
    if not offset > 0:
        raise ValueError(f"floor fit: the fitted floor puts the camera on or below it (height {offset:.3f} m)")
    return FloorPlane(tuple(float(x) for x in n), offset)


__all__ = ["CameraMount", "FloorPlane", "HORIZON_EPS", "MAX_PITCH_DEG", "MountError", "check_intrinsics",
           "fit_floor_plane"]
