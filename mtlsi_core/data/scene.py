"""Procedural indoor rooms for the synthetic data set: a box room, furniture, props, wall items, lights, camera.

Classes are NYUDv2's 40 (``mtlsi_core.tasks.NYUD_CLASSES``, 0-based); a few clutter objects stay unlabelled
(255) as in NYUDv2. Furniture is assembled from boxes (tables and chairs have legs, beds a mattress and a
headboard, shelves boards with books on them), lamps and bins from cylinders, balls from spheres; pictures,
windows, doors, whiteboards, mirrors, blinds and curtains are thin boxes on the walls.

World frame: x along the room's depth (the camera stands near the wall x = 0 and looks towards +x), y across,
z up; metres. Everything is drawn from one ``numpy.random.Generator``, so a scene depends only on its seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from mtlsi_core.data.materials import ANY, LIGHT, WOOD, Material, random_material
from mtlsi_core.data.raycast import Box, Cylinder, Primitive, Sphere, rot_z
from mtlsi_core.tasks import NYUD_CLASSES

UNLABELLED = 255
CLASS_ID = {name: i for i, name in enumerate(NYUD_CLASSES)}
ROOM_FACE_LABELS = ("wall", "wall", "wall", "wall", "floor", "ceiling")  # by room face code

# A part in an object's local frame: (shape, centre (x, y, z), parameters, material slot).
# Local frame: origin at the footprint centre on the floor, x = width, y = depth (+y towards the wall), z up.
PartSpec = tuple[str, tuple[float, float, float], tuple[float, ...], int]
# A child object: (type name, local centre of its footprint bottom (x, y, z), (w, d, h)).
ChildSpec = tuple[str, tuple[float, float, float], tuple[float, float, float]]

SHAPES: dict[str, Callable[[np.ndarray, tuple[float, ...], float], Primitive]] = {
    "box": lambda c, p, yaw: Box(center=c, yaw=yaw, half=np.asarray(p)),
    "cyl": lambda c, p, yaw: Cylinder(center=c, yaw=yaw, radius=p[0], half_height=p[1]),
    "sph": lambda c, p, yaw: Sphere(center=c, yaw=yaw, radius=p[0]),
}


@dataclass
class Part:
    prim: Primitive
    material: Material
    obj: int  # object id (0..5 are the room faces)


@dataclass
class Light:
    intensity: float
    position: np.ndarray | None = None  # point light (world)
    direction: np.ndarray | None = None  # directional light: unit vector from surfaces towards the light


@dataclass
class Scene:
    room: np.ndarray  # (Lx, Ly, Lz)
    room_materials: list[Material]  # by room face code
    parts: list[Part]
    labels: list[int]  # by object id
    lights: list[Light]
    ambient: float
    cam_pos: np.ndarray
    R_wc: np.ndarray  # columns: camera x (right), y (down), z (forward) in world coordinates
    exposure: float = 1.0


# --------------------------------------------------------------------------------------------------
# Object builders: (rng, w, d, h) -> (parts, children)
# --------------------------------------------------------------------------------------------------

Build = Callable[[np.random.Generator, float, float, float], tuple[list[PartSpec], list[ChildSpec]]]


def _block(rng, w, d, h):
    return [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0)], []


def _topped(rng, w, d, h):
    """Cabinet-like body with a slightly larger top (dresser, counter)."""
    tt = rng.uniform(0.02, 0.045)
    return [("box", (0.0, 0.01, (h - tt) / 2), (w / 2 - 0.01, d / 2 - 0.01, (h - tt) / 2), 0),
            ("box", (0.0, 0.0, h - tt / 2), (w / 2 + 0.01, d / 2 + 0.01, tt / 2), 1)], []


def _legs(w, d, z_top, s, inset, slot):
    hx, hy = w / 2 - s / 2 - inset, d / 2 - s / 2 - inset
    return [("box", (sx * hx, sy * hy, z_top / 2), (s / 2, s / 2, z_top / 2), slot)
            for sx in (-1, 1) for sy in (-1, 1)]


def _table(rng, w, d, h):
    tt = rng.uniform(0.025, 0.05)
    parts = [("box", (0.0, 0.0, h - tt / 2), (w / 2, d / 2, tt / 2), 0)]
    return parts + _legs(w, d, h - tt, rng.uniform(0.035, 0.07), rng.uniform(0.0, 0.08), int(rng.integers(2))), []


def _desk(rng, w, d, h):
    tt, pt = rng.uniform(0.025, 0.04), rng.uniform(0.02, 0.04)
    zp = (h - tt) / 2
    parts = [("box", (0.0, 0.0, h - tt / 2), (w / 2, d / 2, tt / 2), 0),
             ("box", (-(w / 2 - pt / 2), 0.0, zp), (pt / 2, d / 2 - 0.01, zp), 1),
             ("box", (w / 2 - pt / 2, 0.0, zp), (pt / 2, d / 2 - 0.01, zp), 1)]
    if rng.random() < 0.5:  # drawer block
        dw = rng.uniform(0.3, 0.45)
        parts.append(("box", (w / 2 - pt - dw / 2, 0.0, h - tt - 0.1), (dw / 2, d / 2 - 0.02, 0.1), 1))
    return parts, []


def _chair(rng, w, d, h):
    sh, st = rng.uniform(0.42, 0.48), rng.uniform(0.03, 0.06)
    parts = [("box", (0.0, 0.0, sh - st / 2), (w / 2, d / 2, st / 2), 0)]
    parts += _legs(w, d, sh - st, rng.uniform(0.025, 0.045), 0.0, 1)
    bt = rng.uniform(0.02, 0.05)
    parts.append(("box", (0.0, d / 2 - bt / 2, (sh + h) / 2), (w / 2, bt / 2, (h - sh) / 2), 0))
    return parts, []


def _bed(rng, w, d, h):
    hb = h * rng.uniform(0.45, 0.6)
    head = h + rng.uniform(0.25, 0.7)
    parts = [("box", (0.0, 0.0, hb / 2), (w / 2, d / 2, hb / 2), 1),
             ("box", (0.0, -0.03, (hb + h) / 2), (w / 2 - 0.02, d / 2 - 0.05, (h - hb) / 2), 0),
             ("box", (0.0, d / 2 - 0.025, head / 2), (w / 2, 0.025, head / 2), 1)]
    n = int(rng.integers(0, 3))
    children = [("pillow", ((i + 0.5) * w / n - w / 2, d / 2 - 0.3, h), (min(0.65, w / n - 0.05), 0.38, 0.12))
                for i in range(n)]
    return parts, children


def _sofa(rng, w, d, h):
    sh, aw = rng.uniform(0.38, 0.46), rng.uniform(0.12, 0.22)
    ah, bd = rng.uniform(0.55, 0.68), rng.uniform(0.15, 0.25)
    parts = [("box", (0.0, 0.0, sh / 2), (w / 2, d / 2, sh / 2), 0),
             ("box", (0.0, d / 2 - bd / 2, h / 2), (w / 2, bd / 2, h / 2), 0),
             ("box", (-(w / 2 - aw / 2), 0.0, ah / 2), (aw / 2, d / 2, ah / 2), 0),
             ("box", (w / 2 - aw / 2, 0.0, ah / 2), (aw / 2, d / 2, ah / 2), 0)]
    n = int(rng.integers(0, 3))
    inner = w - 2 * aw
    children = [("pillow", (-inner / 2 + (i + 0.5) * inner / n, d / 2 - bd - 0.08, sh), (0.42, 0.14, 0.4))
                for i in range(n)] if n else []
    return parts, children


def _shelves(rng, w, d, h):
    th = rng.uniform(0.015, 0.03)
    n = int(rng.integers(3, 6))
    parts = [("box", (0.0, d / 2 - th / 2, h / 2), (w / 2, th / 2, h / 2), 1),
             ("box", (-(w / 2 - th / 2), 0.0, h / 2), (th / 2, d / 2, h / 2), 0),
             ("box", (w / 2 - th / 2, 0.0, h / 2), (th / 2, d / 2, h / 2), 0)]
    gap = (h - th) / n
    children = []
    for i in range(n + 1):
        z = i * gap + th / 2
        parts.append(("box", (0.0, 0.0, z), (w / 2 - th, d / 2, th / 2), 0))
        if i < n and rng.random() < 0.75:
            bw = rng.uniform(0.15, w - 2 * th - 0.02)
            bx = rng.uniform(-(w / 2 - th - bw / 2), w / 2 - th - bw / 2)
            bh = min(gap - th - 0.02, rng.uniform(0.15, 0.3))
            if bh > 0.05:
                children.append(("books", (bx, 0.0, z + th / 2), (bw, d * rng.uniform(0.6, 0.9), bh)))
    return parts, children


def _floor_lamp(rng, w, d, h):
    sr, sh = w / 2, rng.uniform(0.12, 0.18)
    return [("cyl", (0.0, 0.0, 0.015), (rng.uniform(0.1, 0.16), 0.015), 1),
            ("cyl", (0.0, 0.0, (h - 2 * sh) / 2), (rng.uniform(0.012, 0.025), (h - 2 * sh) / 2), 1),
            ("cyl", (0.0, 0.0, h - sh), (sr, sh), 0)], []


def _table_lamp(rng, w, d, h):
    bh = h * rng.uniform(0.45, 0.6)
    return [("cyl", (0.0, 0.0, bh / 2), (w * rng.uniform(0.15, 0.3), bh / 2), 1),
            ("cyl", (0.0, 0.0, (bh + h) / 2), (w / 2, (h - bh) / 2), 0)], []


def _cylinder(rng, w, d, h):
    return [("cyl", (0.0, 0.0, h / 2), (w / 2, h / 2), 0)], []


def _ball(rng, w, d, h):
    return [("sph", (0.0, 0.0, w / 2), (w / 2,), 0)], []


def _tv(rng, w, d, h):
    sh = rng.uniform(0.03, 0.08)
    return [("box", (0.0, 0.0, sh / 2), (w * 0.15, d * 1.5, sh / 2), 1),
            ("box", (0.0, 0.0, sh + (h - sh) / 2), (w / 2, d / 2, (h - sh) / 2), 0)], []


@dataclass(frozen=True)
class ObjectType:
    label: str | None  # NYUD class name; None = unlabelled clutter
    w: tuple[float, float]
    d: tuple[float, float]
    h: tuple[float, float]
    build: Build = _block
    colours: tuple[int, ...] = tuple(ANY)
    patterns: tuple[str, ...] = ("plain", "noise", "wood", "stripes", "fabric")
    support: bool = False  # small items may stand on top
    square: bool = False  # d = w


FURNITURE = "plain", "noise", "wood", "fabric"
SOFT = "plain", "fabric"
PROP = "plain", "stripes", "noise"
WOODS, ANYC = tuple(WOOD + ANY), tuple(ANY)
T = ObjectType
TYPES: dict[str, ObjectType] = {
    # against a wall
    "bed": T("bed", (1.0, 1.8), (1.9, 2.1), (0.45, 0.65), _bed, patterns=("plain", "fabric", "noise", "stripes")),
    "sofa": T("sofa", (1.5, 2.3), (0.8, 0.95), (0.75, 0.95), _sofa, patterns=("plain", "fabric", "noise")),
    "cabinet": T("cabinet", (0.4, 1.2), (0.4, 0.6), (0.6, 2.0), _block, WOODS, FURNITURE, True),
    "dresser": T("dresser", (0.8, 1.6), (0.4, 0.55), (0.7, 1.2), _topped, tuple(WOOD), FURNITURE, True),
    "night stand": T("night stand", (0.4, 0.55), (0.35, 0.45), (0.45, 0.65), _block, WOODS, FURNITURE, True),
    "bookshelf": T("bookshelf", (0.6, 1.2), (0.25, 0.4), (1.2, 2.2), _shelves, WOODS, FURNITURE),
    "shelves": T("shelves", (0.6, 1.2), (0.25, 0.35), (0.8, 1.8), _shelves, ANYC, FURNITURE),
    "counter": T("counter", (1.2, 2.6), (0.55, 0.7), (0.86, 0.94), _topped, ANYC, FURNITURE + ("tiles",), True),
    "refridgerator": T("refridgerator", (0.6, 0.9), (0.6, 0.75), (1.5, 1.9), _block, tuple(LIGHT + [4, 5, 6]),
                       ("plain", "noise")),
    "desk": T("desk", (1.0, 1.6), (0.5, 0.8), (0.72, 0.77), _desk, WOODS, FURNITURE, True),
    # free-standing
    "table": T("table", (0.8, 1.8), (0.6, 1.0), (0.72, 0.78), _table, WOODS, FURNITURE + ("tiles",), True),
    "chair": T("chair", (0.4, 0.5), (0.4, 0.5), (0.8, 1.0), _chair, ANYC, FURNITURE),
    "box": T("box", (0.25, 0.6), (0.25, 0.6), (0.2, 0.5), _block, ANYC, ("plain", "noise", "stripes")),
    "floor lamp": T("lamp", (0.3, 0.5), (0.3, 0.5), (1.3, 1.8), _floor_lamp, ANYC, SOFT, square=True),
    "bin": T("otherprop", (0.22, 0.4), (0.22, 0.4), (0.3, 0.6), _cylinder, ANYC, PROP, square=True),
    "ball": T("otherprop", (0.15, 0.5), (0.15, 0.5), (0.15, 0.5), _ball, ANYC, PROP, square=True),
    "floor mat": T("floor mat", (0.8, 2.0), (0.6, 1.5), (0.008, 0.015), _block, ANYC,
                   ("fabric", "stripes", "noise", "tiles")),
    "ottoman": T("otherfurniture", (0.4, 0.7), (0.4, 0.7), (0.35, 0.48), _cylinder, ANYC, SOFT, square=True),
    # small items (on supports) and children
    "table lamp": T("lamp", (0.2, 0.4), (0.2, 0.4), (0.3, 0.6), _table_lamp, ANYC, SOFT, square=True),
    "vase": T("otherprop", (0.08, 0.2), (0.08, 0.2), (0.15, 0.4), _cylinder, ANYC, PROP, square=True),
    "small box": T("box", (0.1, 0.35), (0.1, 0.3), (0.05, 0.25), _block, ANYC, ("plain", "noise", "stripes")),
    "small ball": T("otherprop", (0.08, 0.2), (0.08, 0.2), (0.08, 0.2), _ball, ANYC, ("plain", "noise"), square=True),
    "television": T("television", (0.6, 1.1), (0.05, 0.08), (0.4, 0.7), _tv, (5, 6, 6, 14), ("plain", "noise")),
    "books": T("books", (0.15, 0.8), (0.15, 0.3), (0.15, 0.3), _block, ANYC, ("stripes", "noise")),
    "pillow": T("pillow", (0.4, 0.6), (0.3, 0.4), (0.1, 0.4), _block, ANYC, ("plain", "fabric", "stripes")),
    "clutter": T(None, (0.1, 0.5), (0.1, 0.5), (0.1, 0.6), _block, ANYC, ("plain", "noise", "stripes")),
}
WALL_FURNITURE = ("bed", "sofa", "cabinet", "dresser", "night stand", "bookshelf", "shelves", "counter",
                  "refridgerator", "desk")
FREE = ("table", "chair", "box", "floor lamp", "bin", "ball", "floor mat", "ottoman", "clutter")
ON_TOP = ("table lamp", "vase", "small box", "small ball", "books", "television", "clutter")


@dataclass(frozen=True)
class WallItemType:
    label: str
    w: tuple[float, float]
    h: tuple[float, float]
    z0: tuple[float, float]  # height of the bottom edge
    t: tuple[float, float]  # thickness
    colours: tuple[int, ...] = tuple(ANY)
    patterns: tuple[str, ...] = ("plain",)
    emissive: tuple[float, float] = (0.0, 0.0)


W = WallItemType
WALL_ITEMS: dict[str, WallItemType] = {
    "picture": W("picture", (0.25, 1.0), (0.25, 0.8), (1.0, 1.6), (0.015, 0.04),
                 patterns=("noise", "stripes", "tiles", "fabric")),
    "window": W("window", (0.7, 1.6), (0.9, 1.4), (0.75, 1.0), (0.01, 0.03), tuple(LIGHT), ("plain", "noise"),
                emissive=(0.5, 1.0)),
    "door": W("door", (0.78, 0.95), (1.98, 2.1), (0.0, 0.0), (0.02, 0.04), tuple(WOOD + LIGHT), ("plain", "wood")),
    "whiteboard": W("whiteboard", (1.0, 2.0), (0.8, 1.2), (0.8, 1.1), (0.015, 0.03), (0, 1, 2), ("plain",)),
    "mirror": W("mirror", (0.35, 0.8), (0.5, 1.2), (0.8, 1.3), (0.01, 0.02), (3, 4, 13), ("noise", "plain")),
    "blinds": W("blinds", (0.7, 1.6), (0.4, 1.2), (1.0, 1.4), (0.03, 0.06), tuple(LIGHT + [4]), ("stripes",)),
    "curtain": W("curtain", (0.4, 1.2), (1.6, 2.3), (0.1, 0.4), (0.04, 0.12), ANYC, ("fabric", "stripes", "plain")),
}

# Walls that furniture and wall items go on, by room face code, with the unit vector pointing into the wall.
WALLS = {1: (1.0, 0.0), 2: (0.0, -1.0), 3: (0.0, 1.0)}


def _yaw_facing_wall(wx: float, wy: float) -> float:
    """Yaw whose local +y axis points along (wx, wy)."""
    return math.atan2(-wx, wy)


@dataclass
class _Builder:
    rng: np.random.Generator
    room: np.ndarray
    cam_xy: np.ndarray
    parts: list[Part] = field(default_factory=list)
    labels: list[int] = field(default_factory=lambda: [CLASS_ID[n] for n in ROOM_FACE_LABELS])
    footprints: list[tuple[float, float, float, float]] = field(default_factory=list)
    wall_rects: dict[int, list[tuple[float, float, float, float]]] = field(default_factory=lambda: {k: [] for k in WALLS})
    supports: list[tuple[np.ndarray, float, float, float, float]] = field(default_factory=list)
    types: dict[str, ObjectType] = field(default_factory=lambda: TYPES)  # the catalogue add_object draws from
    material: Callable[..., Material] = random_material  # (rng, colours, patterns) -> a material
    slots: int = 2  # materials drawn per object (a part's slot picks one)

    def _footprint(self, x: float, y: float, w: float, d: float, yaw: float) -> tuple[float, float, float, float]:
        c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
        ex, ey = (w * c + d * s) / 2, (w * s + d * c) / 2
        return x - ex, x + ex, y - ey, y + ey

    def _free(self, fp: tuple[float, float, float, float], keepout: float, margin: float = 0.03) -> bool:
        x0, x1, y0, y1 = fp
        lx, ly = float(self.room[0]), float(self.room[1])
        if x0 < -1e-6 or y0 < -1e-6 or x1 > lx + 1e-6 or y1 > ly + 1e-6:
            return False
        cx = min(max(self.cam_xy[0], x0), x1)
        cy = min(max(self.cam_xy[1], y0), y1)
        if math.hypot(cx - self.cam_xy[0], cy - self.cam_xy[1]) < keepout:
            return False
        return all(x1 + margin <= a0 or x0 - margin >= a1 or y1 + margin <= b0 or y0 - margin >= b1
                   for a0, a1, b0, b1 in self.footprints)

    def add_object(self, type_name: str, x: float, y: float, z: float, yaw: float, w: float, d: float, h: float) -> int:
        """Instantiate an object type at a world pose; returns its object id."""
        ot = self.types[type_name]
        obj = len(self.labels)
        self.labels.append(UNLABELLED if ot.label is None else CLASS_ID[ot.label])
        mats = [self.material(self.rng, list(ot.colours), list(ot.patterns)) for _ in range(self.slots)]
        parts, children = ot.build(self.rng, w, d, h)
        R = rot_z(yaw)
        origin = np.array([x, y, z])
        for shape, c, p, slot in parts:
            self.parts.append(Part(SHAPES[shape](origin + R @ np.asarray(c), p, yaw), mats[slot], obj))
        for ctype, c, (cw, cd, ch) in children:
            wc = origin + R @ np.asarray(c)
            self.add_object(ctype, float(wc[0]), float(wc[1]), float(wc[2]), yaw, cw, cd, ch)
        if ot.support:
            self.supports.append((origin, yaw, w, d, z + h))
        return obj

    def _size(self, ot: ObjectType) -> tuple[float, float, float]:
        w = self.rng.uniform(*ot.w)
        d = w if ot.square else self.rng.uniform(*ot.d)
        return w, d, self.rng.uniform(*ot.h)

    def wall_furniture(self, n: int) -> None:
        for _ in range(n):
            name = str(self.rng.choice(WALL_FURNITURE))
            ot = TYPES[name]
            for _try in range(12):
                w, d, h = self._size(ot)
                code = int(self.rng.choice(list(WALLS)))
                wx, wy = WALLS[code]
                along = float(self.room[1] if code == 1 else self.room[0])
                if along < w + 0.1:
                    continue
                s = self.rng.uniform(w / 2 + 0.05, along - w / 2 - 0.05)
                gap = self.rng.uniform(0.0, 0.05)
                off = d / 2 + gap
                x = float(self.room[0] - off) if code == 1 else s
                y = s if code == 1 else (float(self.room[1] - off) if code == 3 else off)
                yaw = _yaw_facing_wall(wx, wy)
                fp = self._footprint(x, y, w, d, yaw)
                if self._free(fp, keepout=0.6):
                    self.footprints.append(fp)
                    self.wall_rects[code].append((s - w / 2, s + w / 2, 0.0, h))
                    self.add_object(name, x, y, 0.0, yaw, w, d, h)
                    break

    def free_objects(self, n: int) -> None:
        for _ in range(n):
            name = str(self.rng.choice(FREE, p=[0.2, 0.15, 0.1, 0.1, 0.1, 0.07, 0.1, 0.08, 0.1]))
            ot = TYPES[name]
            for _try in range(12):
                w, d, h = self._size(ot)
                x = self.rng.uniform(w / 2, self.room[0] - w / 2)
                y = self.rng.uniform(d / 2, self.room[1] - d / 2)
                yaw = self.rng.uniform(-math.pi, math.pi) if self.rng.random() < 0.5 else \
                    float(self.rng.integers(4)) * math.pi / 2 + self.rng.normal(0, 0.05)
                fp = self._footprint(x, y, w, d, yaw)
                if self._free(fp, keepout=1.0):
                    self.footprints.append(fp)
                    self.add_object(name, x, y, 0.0, yaw, w, d, h)
                    if name == "table":
                        self._chairs_around(x, y, w, d, yaw)
                    break

    def _chairs_around(self, x: float, y: float, w: float, d: float, yaw: float) -> None:
        ot = TYPES["chair"]
        for side in self.rng.permutation(4)[: int(self.rng.integers(0, 4))]:
            cw, cd, ch = self._size(ot)
            ang = yaw + side * math.pi / 2  # the table's local +y turned to this side
            reach = (d if side % 2 == 0 else w) / 2 + cd / 2 - 0.1
            cx, cy = x - math.sin(ang) * reach, y + math.cos(ang) * reach
            cyaw = ang + self.rng.normal(0, 0.15)  # the chair's back (+y local) away from the table
            fp = self._footprint(cx, cy, cw, cd, cyaw)
            x0, x1, y0, y1 = fp
            lx, ly = float(self.room[0]), float(self.room[1])
            if x0 >= 0 and y0 >= 0 and x1 <= lx and y1 <= ly and math.hypot(cx - self.cam_xy[0], cy - self.cam_xy[1]) > 0.9:
                self.add_object("chair", cx, cy, 0.0, cyaw, cw, cd, ch)

    def items_on_supports(self) -> None:
        for origin, yaw, w, d, top in list(self.supports):
            if top > 1.3 or self.rng.random() > 0.7:
                continue
            for _ in range(int(self.rng.integers(1, 4))):
                name = str(self.rng.choice(ON_TOP))
                ot = TYPES[name]
                iw, idp, ih = self._size(ot)
                if iw > w - 0.05 or idp > d - 0.05:
                    continue
                lx = self.rng.uniform(-(w - iw) / 2, (w - iw) / 2)
                ly = self.rng.uniform(-(d - idp) / 2, (d - idp) / 2)
                p = origin + rot_z(yaw) @ np.array([lx, ly, 0.0])
                self.add_object(name, float(p[0]), float(p[1]), top, yaw + self.rng.normal(0, 0.2), iw, idp, ih)

    def wall_items(self, n: int) -> None:
        names = list(WALL_ITEMS)
        for _ in range(n):
            name = str(self.rng.choice(names, p=[0.35, 0.2, 0.15, 0.08, 0.07, 0.07, 0.08]))
            it = WALL_ITEMS[name]
            for _try in range(10):
                code = int(self.rng.choice(list(WALLS)))
                wx, wy = WALLS[code]
                along = float(self.room[1] if code == 1 else self.room[0])
                w, h = self.rng.uniform(*it.w), self.rng.uniform(*it.h)
                z0 = self.rng.uniform(*it.z0)
                if along < w + 0.2 or z0 + h > self.room[2] - 0.05:
                    continue
                s = self.rng.uniform(w / 2 + 0.1, along - w / 2 - 0.1)
                rect = (s - w / 2, s + w / 2, z0, z0 + h)
                if any(rect[1] > a0 and rect[0] < a1 and rect[3] > b0 and rect[2] < b1
                       for a0, a1, b0, b1 in self.wall_rects[code]):
                    continue
                t = self.rng.uniform(*it.t)
                x = float(self.room[0] - t / 2) if code == 1 else s
                y = s if code == 1 else (float(self.room[1] - t / 2) if code == 3 else t / 2)
                self.wall_rects[code].append(rect)
                obj = len(self.labels)
                self.labels.append(CLASS_ID[it.label])
                mat = random_material(self.rng, list(it.colours), list(it.patterns),
                                      emissive=float(self.rng.uniform(*it.emissive)))
                prim = Box(center=np.array([x, y, z0 + h / 2]), yaw=_yaw_facing_wall(wx, wy),
                           half=np.array([w / 2, t / 2, h / 2]))
                self.parts.append(Part(prim, mat, obj))
                break


def _camera(rng: np.random.Generator, room: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = np.array([rng.uniform(0.25, 0.9), rng.uniform(0.3, 0.7) * room[1], rng.uniform(1.0, 1.8)])
    target = np.array([room[0] * rng.uniform(0.6, 1.0), room[1] * rng.uniform(0.15, 0.85)])
    yaw = math.atan2(target[1] - pos[1], target[0] - pos[0])
    pitch = math.radians(rng.uniform(-28.0, -5.0))
    roll = math.radians(rng.uniform(-4.0, 4.0))
    return pos, optical_rotation(yaw, pitch, roll)


def optical_rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-from-optical rotation (columns: x right, y down, z forward) of a camera looking along (yaw, pitch),
    world z up, rolled by ``roll`` about its optical axis."""
    fwd = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), math.sin(pitch)])
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    c, s = math.cos(roll), math.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    return np.stack([right, down, fwd], axis=1)


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a complete room, its contents, lights and camera pose."""
    room = np.array([rng.uniform(3.5, 7.0), rng.uniform(3.0, 6.0), rng.uniform(2.4, 3.2)])
    cam_pos, R_wc = _camera(rng, room)
    b = _Builder(rng, room, cam_pos[:2])
    b.wall_furniture(int(rng.integers(2, 7)))
    b.free_objects(int(rng.integers(1, 5)))
    b.items_on_supports()
    b.wall_items(int(rng.integers(2, 7)))

    wall = random_material(rng, LIGHT, ["plain", "plain", "noise", "stripes"], contrast=(0.8, 0.95))
    floor = random_material(rng, WOOD + LIGHT + [4, 5], ["wood", "tiles", "noise", "plain"])
    ceiling = random_material(rng, LIGHT, ["plain"], contrast=(0.9, 1.0))
    room_mats = [wall, wall, wall, wall, floor, ceiling]
    if rng.random() < 0.3:  # an accent wall
        room_mats[int(rng.integers(4))] = random_material(rng, ANY, ["plain", "noise", "stripes"])

    lights = [Light(float(rng.uniform(0.9, 1.6)),
                    position=np.array([rng.uniform(0.2, 0.8) * room[0], rng.uniform(0.2, 0.8) * room[1], room[2] - 0.1]))
              for _ in range(int(rng.integers(1, 3)))]
    d = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.2, 1.0)])
    lights.append(Light(float(rng.uniform(0.15, 0.4)), direction=d / np.linalg.norm(d)))
    return Scene(room, room_mats, b.parts, b.labels, lights, float(rng.uniform(0.22, 0.4)), cam_pos, R_wc,
                 float(rng.uniform(0.85, 1.15)))
