"""Analytic ray casting of boxes, cylinders and spheres, vectorised over pixels with numpy.

World frame: z up, metres. Camera optical frame: x right, y down, z forward. A pixel's ray is
``o + t * R_wc @ ((u - cx) / fx, (v - cy) / fy, 1)``; because the camera-frame direction has z = 1, the ray
parameter ``t`` of a hit *is* its z-depth.

Arrays are kept as separate (H, W) planes per coordinate (structure of arrays) so that the rectangle of
pixels a primitive can cover is a cheap 2D slice. Every primitive returns, for the rays it is given, the hit
parameter (``inf`` where missed) and a face code: ``2 * axis + (1 if the normal points along -axis)``
in the primitive's local frame (0: +x, 1: -x, 2: +y, 3: -y, 4: +z, 5: -z). Boxes and cylinder caps have a
constant normal per face; the normals of curved surfaces are computed from the hit points afterwards.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

EPS = 1e-4
INF = np.float32(np.inf)

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]

# Local unit normal of each face code.
FACE_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float64)


def rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class Rect:
    """Pixel rectangle [y0, y1) x [x0, x1)."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def empty(self) -> bool:
        return self.y1 <= self.y0 or self.x1 <= self.x0


@dataclass
class Primitive:
    """Base of the analytic shapes. ``center``: world position; ``yaw``: rotation about world z."""

    center: np.ndarray
    yaw: float = 0.0
    curved: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.center = np.asarray(self.center, np.float64)
        self._c, self._s = math.cos(self.yaw), math.sin(self.yaw)

    # -- geometry -------------------------------------------------------------------------------
    def half_extent_local(self) -> np.ndarray:
        raise NotImplementedError

    def corners(self) -> np.ndarray:
        """(8, 3) world corners of a box enclosing the primitive (for screen-space culling)."""
        h = self.half_extent_local()
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)
        return (signs * h) @ rot_z(self.yaw).T + self.center

    def to_local(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> Planes:
        """World points (planes) -> local coordinates (relative to the centre, yaw removed)."""
        cx, cy, cz = (float(v) for v in self.center)
        rx, ry, rz = x - cx, y - cy, z - cz
        if self.yaw == 0.0:
            return rx, ry, rz
        return self._c * rx + self._s * ry, self._c * ry - self._s * rx, rz

    def _local_ray(self, o: np.ndarray, d: Planes) -> tuple[tuple[float, float, float], Planes]:
        rel = o - self.center
        ox = self._c * rel[0] + self._s * rel[1]
        oy = self._c * rel[1] - self._s * rel[0]
        dx, dy, dz = d
        if self.yaw != 0.0:
            dx, dy = self._c * dx + self._s * dy, self._c * dy - self._s * dx
        return (float(ox), float(oy), float(rel[2])), (dx, dy, dz)

    def intersect(self, o: np.ndarray, d: Planes) -> tuple[np.ndarray, np.ndarray]:
        """Rays from world point ``o`` along world directions ``d`` -> (t, face code)."""
        raise NotImplementedError

    def face_normals_world(self) -> np.ndarray:
        """(6, 3) world normal of each face code (only meaningful for flat faces)."""
        return FACE_NORMALS @ rot_z(self.yaw).T

    def curved_normals(self, px: np.ndarray, py: np.ndarray, pz: np.ndarray, face: np.ndarray) -> Planes | None:
        """World normals at world hit points on curved faces, or None for flat-faced shapes."""
        return None


@dataclass
class Box(Primitive):
    """Oriented box: ``half`` = half sizes along local x (width), y (depth), z (height)."""

    half: np.ndarray = field(default_factory=lambda: np.ones(3))

    def __post_init__(self) -> None:
        super().__post_init__()
        self.half = np.asarray(self.half, np.float64)

    def half_extent_local(self) -> np.ndarray:
        return self.half

    def intersect(self, o: np.ndarray, d: Planes) -> tuple[np.ndarray, np.ndarray]:
        (ox, oy, oz), (dx, dy, dz) = self._local_ray(o, d)
        hx, hy, hz = (float(v) for v in self.half)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            nears, fars = [], []
            for oc, dc, hc in ((ox, dx, hx), (oy, dy, hy), (oz, dz, hz)):
                inv = np.reciprocal(dc)
                a = (-hc - oc) * inv
                b = (hc - oc) * inv
                nears.append(np.minimum(a, b))
                fars.append(np.maximum(a, b))
            tn = np.maximum(np.maximum(nears[0], nears[1]), nears[2])
            tf = np.minimum(np.minimum(fars[0], fars[1]), fars[2])
            hit = (tn <= tf) & (tn > EPS)
        t = np.where(hit, tn, INF)
        on_x = tn == nears[0]
        on_y = tn == nears[1]
        face = np.where(on_x, (dx > 0).view(np.int8),
                        np.where(on_y, 2 + (dy > 0).view(np.int8), 4 + (dz > 0).view(np.int8)))
        return t, face.astype(np.int8, copy=False)


@dataclass
class Cylinder(Primitive):
    """Vertical cylinder: ``center`` is the centre of its axis, ``radius``, ``half_height``."""

    radius: float = 0.2
    half_height: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        self.curved = True

    def half_extent_local(self) -> np.ndarray:
        return np.array([self.radius, self.radius, self.half_height])

    def intersect(self, o: np.ndarray, d: Planes) -> tuple[np.ndarray, np.ndarray]:
        ox, oy, oz = (float(v) for v in (o - self.center))
        dx, dy, dz = d
        r2, hh = self.radius ** 2, self.half_height
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            a = dx * dx + dy * dy
            b = ox * dx + oy * dy
            disc = b * b - a * (ox * ox + oy * oy - r2)
            t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
            z = oz + t * dz
            t = np.where((disc >= 0) & (t > EPS) & (np.abs(z) <= hh), t, INF)
            face = np.zeros(t.shape, np.int8)
            if abs(oz) > hh:  # a cap faces the camera
                zc = hh if oz > 0 else -hh
                tc = (zc - oz) / dz
                xc, yc = ox + tc * dx, oy + tc * dy
                cap = (tc > EPS) & (xc * xc + yc * yc <= r2) & (tc < t)
                t = np.where(cap, tc, t)
                face[cap] = 4 if oz > 0 else 5
        return t.astype(np.float32, copy=False), face

    def curved_normals(self, px, py, pz, face):
        nx, ny = px - float(self.center[0]), py - float(self.center[1])
        norm = np.sqrt(nx * nx + ny * ny)
        norm[norm == 0] = 1.0
        side = face == 0
        cap_z = np.where(face == 4, 1.0, -1.0)
        return (np.where(side, nx / norm, 0.0), np.where(side, ny / norm, 0.0), np.where(side, 0.0, cap_z))


@dataclass
class Sphere(Primitive):
    radius: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        self.curved = True

    def half_extent_local(self) -> np.ndarray:
        return np.full(3, self.radius)

    def intersect(self, o: np.ndarray, d: Planes) -> tuple[np.ndarray, np.ndarray]:
        ox, oy, oz = (float(v) for v in (o - self.center))
        dx, dy, dz = d
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            a = dx * dx + dy * dy + dz * dz
            b = ox * dx + oy * dy + oz * dz
            disc = b * b - a * (ox * ox + oy * oy + oz * oz - self.radius ** 2)
            t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
            t = np.where((disc >= 0) & (t > EPS), t, INF)
        return t.astype(np.float32, copy=False), np.zeros(t.shape, np.int8)

    def curved_normals(self, px, py, pz, face):
        r = float(self.radius)
        cx, cy, cz = (float(v) for v in self.center)
        return (px - cx) / r, (py - cy) / r, (pz - cz) / r


def room_intersect(o: np.ndarray, d: Planes, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rays from inside the axis-aligned room [0, size] -> exit parameter and inward face code.

    Face codes follow the box convention with inward normals: 0 wall x=0, 1 wall x=Lx, 2 wall y=0,
    3 wall y=Ly, 4 floor, 5 ceiling.
    """
    ts = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for oc, dc, lc in zip(o, d, size):
            inv = np.reciprocal(dc)
            t = np.where(dc > 0, (float(lc) - float(oc)) * inv, -float(oc) * inv)
            t[dc == 0] = INF  # parallel to this pair of walls
            ts.append(t)
    t = np.minimum(np.minimum(ts[0], ts[1]), ts[2])
    on_x, on_y = t == ts[0], t == ts[1]
    face = np.where(on_x, (d[0] > 0).view(np.int8),
                    np.where(on_y, 2 + (d[1] > 0).view(np.int8), 4 + (d[2] > 0).view(np.int8)))
    return t.astype(np.float32, copy=False), face.astype(np.int8, copy=False)


def screen_rect(corners_world: np.ndarray, R_wc: np.ndarray, o: np.ndarray, K: np.ndarray,
                size: tuple[int, int], near: float = 0.05) -> Rect:
    """Conservative pixel rectangle covering the projection of a convex set's corners."""
    h, w = size
    pc = (corners_world - o) @ R_wc  # rows: camera-frame points (R_wc^T p)
    if np.any(pc[:, 2] < near):
        if np.all(pc[:, 2] < near):
            return Rect(0, 0, 0, 0)
        return Rect(0, h, 0, w)  # straddles the camera plane: test every pixel
    u = K[0, 0] * pc[:, 0] / pc[:, 2] + K[0, 2]
    v = K[1, 1] * pc[:, 1] / pc[:, 2] + K[1, 2]
    x0, x1 = max(int(math.floor(u.min())) - 1, 0), min(int(math.ceil(u.max())) + 2, w)
    y0, y1 = max(int(math.floor(v.min())) - 1, 0), min(int(math.ceil(v.max())) + 2, h)
    return Rect(y0, y1, x0, x1)


def zbuffer(prims: "list[Primitive]", room: np.ndarray, o: np.ndarray, R_wc: np.ndarray, K: np.ndarray,
            size: tuple[int, int], D: Planes) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Rect]]:
    """Nearest hit per pixel of rays ``D`` (world directions, one plane per coordinate, camera-frame z = 1) from
    ``o`` inside the room: the room first (primitive ids 0..5 are its faces), then every primitive ``k`` (id 6 + k)
    inside its screen rectangle. Returns (t = z-depth, face code, primitive id (int16), screen rectangles)."""
    depth, face = room_intersect(o, D, room)
    prim = face.astype(np.int16)
    rects = []
    for k, p in enumerate(prims, start=6):
        rect = screen_rect(p.corners(), R_wc, o, K, size)
        rects.append(rect)
        if rect.empty:
            continue
        sl = rect.slices
        t, f = p.intersect(o, (D[0][sl], D[1][sl], D[2][sl]))
        closer = t < depth[sl]
        np.copyto(depth[sl], t, where=closer)
        np.copyto(prim[sl], np.int16(k), where=closer)
        np.copyto(face[sl], f, where=closer)
    return depth, face, prim, rects


ROOM_FRAME = Box(center=np.zeros(3))  # texture coordinates of the room faces: world coordinates


def surface_slices(scene, depth: np.ndarray, prim: np.ndarray, face: np.ndarray, D: Planes, nprim: int):
    """Visible pixels grouped by primitive, so that each primitive's texture is computed on one contiguous slice.

    ``scene`` has ``cam_pos``, ``room_materials`` (by room face code) and ``parts`` (``.prim``, ``.material``).
    Returns ``order`` (the stable sort of the pixels by primitive id: slice ``sl`` of the sorted pixels belongs to
    primitive ``k``) and an iterator of ``(k, sl, frame, material, u, v)``: the primitive (or the room's frame) and
    the texture coordinates of its pixels on their face's plane in the primitive's local frame."""
    flat = prim.ravel()
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=nprim)
    o = scene.cam_pos
    t_s = depth.ravel()[order]
    p_s = [float(o[i]) + t_s * D[i].ravel()[order] for i in range(3)]
    axis_s = face.ravel()[order] >> 1

    def slices():
        start = 0
        for k in range(nprim):
            cnt = int(counts[k])
            if cnt == 0:
                continue
            sl = slice(start, start + cnt)
            start += cnt
            frame, mat = (ROOM_FRAME, scene.room_materials[k]) if k < 6 else \
                (scene.parts[k - 6].prim, scene.parts[k - 6].material)
            qx, qy, qz = frame.to_local(p_s[0][sl], p_s[1][sl], p_s[2][sl])
            ax = axis_s[sl]
            yield k, sl, frame, mat, np.where(ax == 0, qy, qx), np.where(ax == 2, qy, qz)

    return order, slices()
