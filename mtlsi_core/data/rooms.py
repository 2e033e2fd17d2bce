"""Rooms of the ``nyud`` profile: NYUDv2's scene types with their sizes, furniture, clutter, lights and camera.

A room type (bedroom, kitchen, living room, office, bathroom, classroom, dining room; drawn with about NYUDv2's
frequencies) fixes the room's size and what stands in it and where: beds against a wall with night stands and
lamps beside them, counters with wall cabinets above and a sink, sofas facing a coffee table on a rug, desks with
a chair, monitor, papers and books, rows of desks facing a whiteboard, a toilet, bathtub and vanity with a mirror,
a table with chairs around it; pictures, windows (with blinds or curtains), doors; clothes, bags, boxes, books and
people (crude articulated figures). Objects reuse the basic profile's builders (``mtlsi_core.data.scene``) where
they fit and add their own; materials come from ``render.textures``. Lights are ceiling fixtures (warm or cool
white), each window (daylight) and lamps, all casting shadows. The camera is held as in NYUDv2: 1.0-1.7 m high,
pitch -30..+10 degrees, little roll, the Kinect's field of view (the intrinsics are the caller's).

Same conventions as ``scene``: x along the room's depth (the camera stands near the wall x = 0), y across, z up,
metres; everything is drawn from one ``numpy.random.Generator``.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from mtlsi_core.data.assets.library import AssetLibrary, MeshAsset
from mtlsi_core.data.assets.mesh import MeshPrimitive, MeshShape
from mtlsi_core.data.materials import ANY, LIGHT, WOOD
from mtlsi_core.data.raycast import Box, Cylinder, rot_z
from mtlsi_core.data.render.lighting import RoomLight
from mtlsi_core.data.render.textures import PhotoMaterial, TexMaterial, tex_material
from mtlsi_core.data.scene import (CLASS_ID, TYPES, UNLABELLED, WALLS, ObjectType, Part, Scene, _Builder, _chair,
                                   _cylinder, _desk, _shelves, _sofa, _table, _yaw_facing_wall, optical_rotation)

# NYUDv2's scene types and how often they occur among its 1449 labelled frames (bedroom 383, kitchen 225, living
# room 221, bathroom 121, dining room 117, office 78 + home office 50, classroom 49; the rest folded in)
ROOM_TYPES = {"bedroom": 0.28, "kitchen": 0.17, "living room": 0.17, "bathroom": 0.09, "dining room": 0.09,
              "office": 0.12, "classroom": 0.08}
ROOM_SIZES = {  # (depth x, width y, height) ranges, metres
    "bedroom": ((3.0, 5.0), (2.8, 4.5), (2.4, 2.9)), "kitchen": ((2.8, 5.0), (2.4, 4.2), (2.4, 2.9)),
    "living room": ((4.0, 7.0), (3.5, 6.0), (2.4, 3.0)), "bathroom": ((2.0, 3.2), (1.6, 2.8), (2.3, 2.7)),
    "dining room": ((3.5, 5.5), (3.0, 4.8), (2.4, 3.0)), "office": ((3.0, 6.0), (2.8, 5.0), (2.4, 3.0)),
    "classroom": ((6.0, 9.0), (5.5, 8.0), (2.7, 3.4)),
}
WARM = np.array([1.15, 1.0, 0.78], np.float32)  # ~2800 K, relative to a neutral white
COOL = np.array([0.95, 1.0, 1.08], np.float32)  # ~5000 K fluorescent / LED
DAYLIGHT = np.array([0.85, 0.97, 1.2], np.float32)


# --------------------------------------------------------------------------------------------------
# Object builders of the nyud profile (local frame as in scene: +y towards the wall, front at -y)
# --------------------------------------------------------------------------------------------------

def _doors(rng, w, d, h, z0=0.0):
    """Door fronts and handles on the -y face of a cabinet body of (w, d, h) starting at height z0."""
    n = max(1, int(round(w / rng.uniform(0.4, 0.6))))
    dw = w / n
    parts = []
    for i in range(n):
        cx = -w / 2 + (i + 0.5) * dw
        parts.append(("box", (cx, -d / 2 - 0.006, z0 + h / 2), (dw / 2 - 0.004, 0.006, h / 2 - 0.004), 1))
        hx = cx + (dw / 2 - 0.05) * (1 if i % 2 else -1)
        parts.append(("box", (hx, -d / 2 - 0.02, z0 + h * 0.5), (0.008, 0.01, min(0.08, h / 4)), 2))
    return parts


def _cabinet(rng, w, d, h):
    return [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0)] + _doors(rng, w, d, h), []


def _drawers(rng, w, d, h):
    """Dresser / night stand: body, top, rows of drawer fronts with knobs."""
    tt = rng.uniform(0.02, 0.04)
    parts = [("box", (0.0, 0.0, (h - tt) / 2), (w / 2, d / 2, (h - tt) / 2), 0),
             ("box", (0.0, 0.0, h - tt / 2), (w / 2 + 0.01, d / 2 + 0.01, tt / 2), 0)]
    rows = max(1, int(round((h - 0.1) / rng.uniform(0.18, 0.28))))
    rh = (h - tt - 0.08) / rows
    for r in range(rows):
        z = 0.08 + (r + 0.5) * rh
        parts.append(("box", (0.0, -d / 2 - 0.006, z), (w / 2 - 0.02, 0.006, rh / 2 - 0.006), 1))
        parts.append(("box", (0.0, -d / 2 - 0.018, z), (0.04, 0.008, 0.008), 2))
    return parts, []


def _counter(rng, w, d, h):
    tt = rng.uniform(0.03, 0.045)
    parts = [("box", (0.0, 0.02, (h - tt) / 2), (w / 2, d / 2 - 0.03, (h - tt) / 2), 0),
             ("box", (0.0, 0.0, h - tt / 2), (w / 2 + 0.01, d / 2 + 0.01, tt / 2), 2)]
    parts += _doors(rng, w, d - 0.06, h - tt - 0.1, 0.1)
    children = []
    if rng.random() < 0.6:
        children.append(("sink basin", (rng.uniform(-w / 4, w / 4), 0.0, h), (0.55, 0.42, 0.03)))
    return parts, children


def _vanity(rng, w, d, h):
    parts, _ = _counter(rng, w, d, h)
    return parts, [("sink basin", (0.0, 0.0, h), (min(0.5, w - 0.1), 0.38, 0.04))]


def _basin(rng, w, d, h):
    """A sink: a rim and a recessed bowl on the top of a counter (the bowl is a dark inset), a faucet."""
    return [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0),
            ("box", (0.0, -0.02, h + 0.001), (w / 2 - 0.05, d / 2 - 0.07, 0.001), 1),
            ("cyl", (0.0, d / 2 - 0.04, h + 0.1), (0.015, 0.1), 2),
            ("box", (0.0, d / 2 - 0.1, h + 0.19), (0.012, 0.06, 0.012), 2)], []


def _stove(rng, w, d, h):
    parts = [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0),
             ("box", (0.0, -d / 2 - 0.005, h * 0.45), (w / 2 - 0.05, 0.005, h * 0.25), 1)]
    for sx in (-1, 1):
        for sy in (-1, 1):
            parts.append(("cyl", (sx * w / 4, sy * d / 4, h + 0.008), (0.09, 0.008), 1))
    return parts, []


def _toilet(rng, w, d, h):
    tank_d = 0.18
    bowl_h = rng.uniform(0.38, 0.42)
    tank_z, tank_hh = (bowl_h + h) / 2 + 0.02, (h - bowl_h) / 2 + 0.02
    return [("box", (0.0, d / 2 - tank_d / 2, tank_z), (w / 2, tank_d / 2, tank_hh), 0),
            ("cyl", (0.0, -0.05, bowl_h / 2), (w / 2 * 0.85, bowl_h / 2), 0),
            ("cyl", (0.0, -0.05, bowl_h + 0.01), (w / 2 * 0.95, 0.012), 1)], []


def _bathtub(rng, w, d, h):
    t = 0.07
    return [("box", (0.0, 0.0, 0.05), (w / 2, d / 2, 0.05), 0),
            ("box", (0.0, -d / 2 + t / 2, h / 2), (w / 2, t / 2, h / 2), 0),
            ("box", (0.0, d / 2 - t / 2, h / 2), (w / 2, t / 2, h / 2), 0),
            ("box", (-w / 2 + t / 2, 0.0, h / 2), (t / 2, d / 2 - t, h / 2), 0),
            ("box", (w / 2 - t / 2, 0.0, h / 2), (t / 2, d / 2 - t, h / 2), 0)], []


def _bed(rng, w, d, h):
    hb = h * rng.uniform(0.45, 0.6)
    head = h + rng.uniform(0.3, 0.7)
    parts = [("box", (0.0, 0.0, hb / 2), (w / 2, d / 2, hb / 2), 1),
             ("box", (0.0, -0.03, (hb + h) / 2), (w / 2 - 0.02, d / 2 - 0.05, (h - hb) / 2), 0),
             ("box", (0.0, d / 2 - 0.025, head / 2), (w / 2, 0.025, head / 2), 1)]
    if rng.random() < 0.7:  # a duvet over the lower part, hanging a little over the sides
        parts.append(("box", (0.0, -0.25, h + 0.03), (w / 2 + 0.03, d / 2 - 0.2, 0.04), 2))
    n = int(rng.integers(1, 4))
    children = [("pillow", ((i + 0.5) * w / n - w / 2, d / 2 - 0.3, h), (min(0.65, w / n - 0.05), 0.38, 0.14))
                for i in range(n)]
    if rng.random() < 0.4:
        children.append(("clothes", (rng.uniform(-w / 3, w / 3), rng.uniform(-d / 3, 0.0), h + 0.07),
                         (rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.5), 0.08)))
    return parts, children


def _clothes(rng, w, d, h):
    """A heap of cloth: a few flat, overlapping boxes."""
    parts = []
    for i in range(int(rng.integers(2, 4))):
        cw, cd = w * rng.uniform(0.5, 1.0), d * rng.uniform(0.5, 1.0)
        parts.append(("box", (rng.uniform(-w, w) * 0.2, rng.uniform(-d, d) * 0.2, h * (i + 0.5) / 3),
                      (cw / 2, cd / 2, h / 6), i % 2))
    return parts, []


def _bag(rng, w, d, h):
    return [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0),
            ("box", (0.0, 0.0, h + 0.08), (w / 2 * 0.6, 0.01, 0.01), 1),
            ("box", (-w * 0.3, 0.0, h + 0.04), (0.01, 0.01, 0.04), 1),
            ("box", (w * 0.3, 0.0, h + 0.04), (0.01, 0.01, 0.04), 1)], []


def _monitor(rng, w, d, h):
    sh = rng.uniform(0.08, 0.15)
    return [("box", (0.0, 0.0, 0.01), (0.12, 0.09, 0.01), 1),
            ("box", (0.0, 0.03, sh / 2), (0.025, 0.02, sh / 2), 1),
            ("box", (0.0, 0.0, sh + (h - sh) / 2), (w / 2, d / 2, (h - sh) / 2), 1),
            ("box", (0.0, -d / 2 - 0.001, sh + (h - sh) / 2), (w / 2 - 0.015, 0.001, (h - sh) / 2 - 0.015), 0)], []


def _person(rng, w, d, h):
    """A standing figure of height h: legs, torso, arms, neck, head (facing -y)."""
    s = h / 1.75
    leg_h, torso_h = 0.85 * s, 0.6 * s
    lx = 0.09 * s
    arm_swing = rng.uniform(-0.05, 0.05)
    return [("box", (-lx, 0.0, leg_h / 2), (0.07 * s, 0.09 * s, leg_h / 2), 1),
            ("box", (lx, 0.0, leg_h / 2), (0.07 * s, 0.09 * s, leg_h / 2), 1),
            ("box", (0.0, 0.0, leg_h + torso_h / 2), (0.19 * s, 0.11 * s, torso_h / 2), 0),
            ("box", (-0.25 * s, arm_swing, leg_h + torso_h * 0.45), (0.05 * s, 0.06 * s, torso_h * 0.5), 0),
            ("box", (0.25 * s, -arm_swing, leg_h + torso_h * 0.45), (0.05 * s, 0.06 * s, torso_h * 0.5), 0),
            ("cyl", (0.0, 0.0, leg_h + torso_h + 0.04 * s), (0.05 * s, 0.04 * s), 2),
            ("sph", (0.0, 0.0, leg_h + torso_h + 0.17 * s), (0.11 * s,), 2)], []


def _plant(rng, w, d, h):
    """A pot and a cluster of leafy balls."""
    ph = h * rng.uniform(0.25, 0.4)
    parts = [("cyl", (0.0, 0.0, ph / 2), (w * 0.3, ph / 2), 1)]
    for _ in range(int(rng.integers(3, 7))):
        r = min(w * rng.uniform(0.15, 0.3), (h - ph) / 2)  # a low plant (h < w, e.g. under a shelf): smaller balls
        parts.append(("sph", (rng.uniform(-w, w) * 0.25, rng.uniform(-w, w) * 0.25, rng.uniform(ph + r, h - r)),
                      (r,), 0))
    return parts, []


def _lamp(rng, w, d, h):
    bh = h * rng.uniform(0.45, 0.6)
    return [("cyl", (0.0, 0.0, bh / 2), (w * rng.uniform(0.12, 0.25), bh / 2), 1),
            ("cyl", (0.0, 0.0, (bh + h) / 2), (w / 2, (h - bh) / 2), 0)], []


def _floor_lamp(rng, w, d, h):
    sh = rng.uniform(0.12, 0.18)
    return [("cyl", (0.0, 0.0, 0.015), (rng.uniform(0.1, 0.16), 0.015), 1),
            ("cyl", (0.0, 0.0, (h - 2 * sh) / 2), (rng.uniform(0.012, 0.025), (h - 2 * sh) / 2), 1),
            ("cyl", (0.0, 0.0, h - sh), (w / 2, sh), 0)], []


def _armchair(rng, w, d, h):
    parts, _ = _sofa(rng, w, d, h)
    return parts, []


def _stool(rng, w, d, h):
    return [("cyl", (0.0, 0.0, h - 0.025), (w / 2, 0.025), 0)] + _legs_of(w * 0.7, h - 0.05, 0.025), []


def _legs_of(w, z_top, s):
    e = w / 2 - s / 2
    return [("box", (sx * e, sy * e, z_top / 2), (s / 2, s / 2, z_top / 2), 1) for sx in (-1, 1) for sy in (-1, 1)]


def _radiator(rng, w, d, h):
    """Panel radiator on short feet (its fins are the texture's vertical stripes)."""
    return [("box", (0.0, 0.0, 0.08 + (h - 0.08) / 2), (w / 2, d / 2, (h - 0.08) / 2), 0),
            ("box", (-w / 2 + 0.05, 0.0, 0.04), (0.015, d / 2, 0.04), 1),
            ("box", (w / 2 - 0.05, 0.0, 0.04), (0.015, d / 2, 0.04), 1)], []


def _appliance(rng, w, d, h):
    """Dishwasher / washing machine: a white box with a door panel and a control strip."""
    return [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0),
            ("box", (0.0, -d / 2 - 0.005, h * 0.45), (w / 2 - 0.02, 0.005, h * 0.4), 0),
            ("box", (0.0, -d / 2 - 0.006, h - 0.06), (w / 2 - 0.02, 0.006, 0.04), 1)], []


def _flat(rng, w, d, h):
    return [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0)], []


T = ObjectType
WOODS, ANYC = tuple(WOOD + ANY), tuple(ANY)
WHITE = (0, 1, 2, 3)
NYUD_TYPES: dict[str, ObjectType] = {**TYPES, **{
    "bed": T("bed", (0.95, 1.9), (1.95, 2.15), (0.45, 0.65), _bed, patterns=("fabric", "plain", "stripes", "carpet")),
    "wardrobe": T("cabinet", (0.8, 1.8), (0.55, 0.65), (1.8, 2.2), _cabinet, WOODS + WHITE, ("wood", "plain")),
    "cabinet": T("cabinet", (0.4, 1.2), (0.4, 0.6), (0.6, 1.4), _cabinet, WOODS + WHITE, ("wood", "plain"), True),
    "wall cabinet": T("cabinet", (0.6, 1.8), (0.3, 0.36), (0.55, 0.8), _cabinet, WOODS + WHITE, ("wood", "plain")),
    "dresser": T("dresser", (0.8, 1.6), (0.42, 0.55), (0.75, 1.2), _drawers, WOODS, ("wood", "plain"), True),
    "night stand": T("night stand", (0.4, 0.55), (0.35, 0.45), (0.5, 0.65), _drawers, WOODS, ("wood", "plain"), True),
    "counter": T("counter", (1.2, 3.0), (0.58, 0.66), (0.88, 0.94), _counter, WOODS + WHITE, ("wood", "plain"), True),
    "vanity": T("cabinet", (0.6, 1.2), (0.45, 0.55), (0.8, 0.88), _vanity, WOODS + WHITE, ("wood", "plain"), True),
    "sink basin": T("sink", (0.4, 0.6), (0.35, 0.45), (0.02, 0.04), _basin, (0, 1, 3), ("plain", "metal")),
    "stove": T("otherfurniture", (0.6, 0.76), (0.6, 0.65), (0.88, 0.92), _stove, (0, 3, 5, 6), ("metal", "plain")),
    "refridgerator": T("refridgerator", (0.6, 0.9), (0.65, 0.75), (1.6, 1.9), _cabinet, (0, 1, 3, 4, 5, 6),
                       ("metal", "plain")),
    "toilet": T("toilet", (0.36, 0.42), (0.62, 0.72), (0.75, 0.82), _toilet, (0, 1), ("plain",)),
    "bathtub": T("bathtub", (1.4, 1.75), (0.7, 0.8), (0.5, 0.6), _bathtub, (0, 1), ("plain",)),
    "bookshelf": T("bookshelf", (0.6, 1.2), (0.25, 0.4), (1.2, 2.2), _shelves, WOODS, ("wood", "plain")),
    "shelves": T("shelves", (0.6, 1.2), (0.25, 0.35), (0.8, 1.8), _shelves, ANYC, ("wood", "plain", "metal")),
    "desk": T("desk", (1.0, 1.6), (0.55, 0.8), (0.72, 0.77), _desk, WOODS + WHITE, ("wood", "plain"), True),
    "table": T("table", (0.8, 1.8), (0.7, 1.0), (0.72, 0.78), _table, WOODS, ("wood", "plain", "marble"), True),
    "coffee table": T("table", (0.8, 1.3), (0.45, 0.7), (0.38, 0.48), _table, WOODS, ("wood", "plain"), True),
    "tv stand": T("cabinet", (1.0, 1.8), (0.4, 0.5), (0.45, 0.6), _drawers, WOODS + (5, 6), ("wood", "plain"), True),
    "sofa": T("sofa", (1.5, 2.3), (0.8, 0.95), (0.75, 0.95), _sofa, ANYC, ("leather", "fabric", "plain")),
    "armchair": T("chair", (0.75, 1.0), (0.75, 0.9), (0.75, 0.95), _armchair, ANYC, ("leather", "fabric")),
    "chair": T("chair", (0.4, 0.5), (0.4, 0.5), (0.8, 1.0), _chair, ANYC, ("wood", "plain", "fabric")),
    "school desk": T("desk", (0.6, 1.2), (0.45, 0.6), (0.7, 0.76), _table, WOODS + WHITE, ("wood", "plain"), True),
    "floor mat": T("floor mat", (0.8, 2.4), (0.6, 1.7), (0.006, 0.015), lambda r, w, d, h: (
        [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0)], []), ANYC, ("carpet", "stripes", "fabric", "tiles")),
    "bath mat": T("floor mat", (0.5, 0.8), (0.4, 0.6), (0.006, 0.015), lambda r, w, d, h: (
        [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0)], []), ANYC, ("carpet", "fabric")),
    "clothes": T("clothes", (0.3, 0.7), (0.3, 0.6), (0.05, 0.25), _clothes, ANYC, ("fabric", "stripes", "carpet")),
    "bag": T("bag", (0.25, 0.5), (0.12, 0.25), (0.25, 0.45), _bag, ANYC, ("fabric", "leather", "plain")),
    "box": T("box", (0.25, 0.6), (0.25, 0.6), (0.2, 0.5), lambda r, w, d, h: (
        [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0)], []), (7, 8, 9, 0, 1), ("noise", "plain")),
    "paper": T("paper", (0.21, 0.3), (0.28, 0.4), (0.002, 0.02), lambda r, w, d, h: (
        [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0)], []), (0, 1, 2), ("paper",)),
    "monitor": T("television", (0.45, 0.65), (0.03, 0.06), (0.35, 0.5), _monitor, (5, 6), ("screen",)),
    "television": T("television", (0.7, 1.3), (0.04, 0.08), (0.45, 0.8), _monitor, (5, 6), ("screen",)),
    "keyboard": T("otherprop", (0.38, 0.46), (0.13, 0.17), (0.02, 0.03), lambda r, w, d, h: (
        [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0)], []), (0, 5, 6), ("noise",)),
    "plant": T("otherprop", (0.25, 0.5), (0.25, 0.5), (0.4, 1.0), _plant, (15, 16), ("noise", "carpet"), square=True),
    "bottle": T("otherprop", (0.06, 0.1), (0.06, 0.1), (0.18, 0.32), _cylinder, ANYC, ("plain", "noise"), square=True),
    "floor lamp": T("lamp", (0.3, 0.5), (0.3, 0.5), (1.3, 1.8), _floor_lamp, (0, 1, 2, 7), ("fabric", "plain"),
                    square=True),
    "table lamp": T("lamp", (0.2, 0.4), (0.2, 0.4), (0.35, 0.6), _lamp, (0, 1, 2, 7), ("fabric", "plain"), square=True),
    "person": T("person", (0.4, 0.5), (0.25, 0.3), (1.55, 1.9), _person, ANYC, ("fabric", "plain", "stripes")),
    "books": T("books", (0.15, 0.6), (0.15, 0.25), (0.15, 0.3), lambda r, w, d, h: (
        [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0)], []), ANYC, ("books",)),
    "towel": T("towel", (0.3, 0.6), (0.02, 0.04), (0.4, 0.8), lambda r, w, d, h: (
        [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0)], []), ANYC, ("fabric", "stripes")),
    "shower curtain": T("shower curtain", (0.8, 1.6), (0.02, 0.05), (1.6, 1.9), lambda r, w, d, h: (
        [("box", (0.0, 0.0, h / 2), (w / 2, d / 2, h / 2), 0)], []), ANYC, ("folds", "stripes")),
    "stool": T("otherfurniture", (0.3, 0.42), (0.3, 0.42), (0.45, 0.75), _stool, WOODS + (5, 6), ("wood", "plain"),
               square=True),
    "ottoman": T("otherfurniture", (0.4, 0.8), (0.4, 0.6), (0.35, 0.48), _flat, ANYC, ("leather", "fabric")),
    "radiator": T("otherstructure", (0.6, 1.4), (0.08, 0.12), (0.45, 0.7), _radiator, (0, 1, 3), ("stripes",)),
    "column": T("otherstructure", (0.25, 0.6), (0.2, 0.45), (2.2, 3.5), _flat, (0, 1, 2, 3), ("plaster", "plain")),
    "appliance": T("otherfurniture", (0.58, 0.62), (0.58, 0.62), (0.82, 0.88), _appliance, (0, 1, 3),
                   ("plain", "metal")),
    "wall plate": T("otherprop", (0.07, 0.12), (0.01, 0.015), (0.07, 0.12), _flat, (0, 1, 2), ("plain",)),
    "clock": T("otherprop", (0.25, 0.4), (0.03, 0.05), (0.25, 0.4), _flat, (0, 5, 6, 9), ("poster",)),
    "ceiling light": T("lamp", (0.25, 0.5), (0.25, 0.5), (0.04, 0.12), _cylinder, (0, 2), ("plain",), square=True),
}}
# small items that go on supports, by the support's kind
ON_DESK = ("monitor", "keyboard", "paper", "paper", "books", "table lamp", "bottle", "box", "bag", "vase")
ON_TABLE = ("books", "paper", "bottle", "plant", "box", "table lamp", "clothes", "vase", "small ball")
ON_COUNTER = ("bottle", "bottle", "box", "paper", "plant", "books", "vase", "bin")
ON_DRESSER = ("table lamp", "books", "box", "bottle", "television", "clothes", "plant", "vase")


@dataclass(frozen=True)
class WallItem:
    label: str
    w: tuple[float, float]
    h: tuple[float, float]
    z0: tuple[float, float]
    t: tuple[float, float]
    colours: tuple[int, ...]
    patterns: tuple[str, ...]
    frame: float = 0.0  # frame width (0: none); the frame has the same label


WI = WallItem
NYUD_WALL_ITEMS = {
    "picture": WI("picture", (0.25, 1.1), (0.25, 0.8), (1.1, 1.7), (0.015, 0.04), ANYC, ("poster",), 0.03),
    "window": WI("window", (0.7, 1.8), (0.9, 1.5), (0.7, 1.0), (0.02, 0.05), (0, 1), ("sky",), 0.06),
    "door": WI("door", (0.78, 0.95), (1.98, 2.1), (0.0, 0.0), (0.03, 0.05), tuple(WOOD) + WHITE, ("wood", "plain"),
               0.06),
    "whiteboard": WI("whiteboard", (1.2, 3.0), (0.9, 1.3), (0.8, 1.0), (0.015, 0.03), (0,), ("whiteboard",), 0.03),
    "mirror": WI("mirror", (0.4, 0.9), (0.6, 1.2), (1.0, 1.3), (0.01, 0.02), (3, 4), ("screen", "poster"), 0.02),
    "towel": WI("towel", (0.3, 0.6), (0.4, 0.8), (0.8, 1.2), (0.02, 0.04), ANYC, ("fabric", "stripes")),
}


@dataclass
class RoomScene(Scene):
    """A nyud-profile scene: a ``Scene`` with a room type and coloured ambient light (or, with assets, the irradiance
    of an HDR panorama: 9 x 3 spherical-harmonic coefficients, ``render.lighting.sh_irradiance``)."""

    room_type: str = "bedroom"
    ambient_colour: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))
    environment: np.ndarray | None = None


def photo_material(rng: np.random.Generator, image: np.ndarray, tile: tuple[float, float],
                   tint: float = 0.12) -> PhotoMaterial:
    """A material showing a photo texture, tiled every ``tile`` metres (drawn), its brightness and hue jittered."""
    c = (rng.uniform(1 - tint, 1 + tint) * rng.uniform(0.96, 1.04, 3)).astype(np.float32)
    return PhotoMaterial("photo", c, c, 1.0 / float(rng.uniform(*tile)), float(rng.uniform(0, 64)),
                         gloss=float(rng.uniform(0.0, 0.2)) if rng.random() < 0.4 else 0.0,
                         shininess=float(rng.uniform(8, 60)), image=image)


@dataclass
class Placement:
    code: int  # wall face code (1..3)
    s: float  # position along the wall of the centre
    x: float
    y: float
    yaw: float
    w: float
    d: float
    h: float
    obj: int


class RoomBuilder(_Builder):
    """``scene._Builder`` with the nyud catalogue and materials, and placement relative to other objects."""

    def __init__(self, rng: np.random.Generator, room: np.ndarray, cam_xy: np.ndarray,
                 assets: AssetLibrary | None = None):
        super().__init__(rng, room, cam_xy, types=NYUD_TYPES, material=tex_material, slots=3)
        self.lights: list[RoomLight] = []
        # assets: meshes replace procedural objects of their type, drawn from a stream of their own (the room's
        # stream only gives its seed), so the rooms stay the same rooms with or without them
        self.assets = assets
        self.asset_rng = np.random.default_rng(int(rng.integers(2 ** 63))) if assets is not None else None
        self._pending: dict[tuple, MeshAsset] = {}  # (name, w, d, h) drawn for a mesh -> that mesh

    def size_of(self, name: str) -> tuple[float, float, float]:
        size = self._size(self.types[name])
        meshes = self.assets.meshes.get(name) if self.assets is not None else None
        if not meshes or self.asset_rng.random() >= self.assets.p_mesh:
            return size
        asset = meshes[int(self.asset_rng.integers(len(meshes)))]
        size = tuple(float(v) for v in asset.size * self.asset_rng.uniform(0.92, 1.08, 3))
        self._pending[(name,) + size] = asset
        return size

    def add_object(self, type_name: str, x: float, y: float, z: float, yaw: float, w: float, d: float,
                   h: float) -> int:
        asset = self._pending.pop((type_name, w, d, h), None)
        if asset is None:
            return super().add_object(type_name, x, y, z, yaw, w, d, h)
        ot = self.types[type_name]
        obj = len(self.labels)
        self.labels.append(UNLABELLED if ot.label is None else CLASS_ID[ot.label])
        scale = np.array([w, d, h]) / asset.size
        R, origin, rng = rot_z(yaw), np.array([x, y, z]), self.asset_rng
        for i, (shape, offset, image) in enumerate(asset.parts):
            if image is not None:  # the asset's own photo texture, tiled at about its size
                mat: TexMaterial = photo_material(rng, image, (0.4, 1.2))
            elif self.assets.textures.get("furniture") and rng.random() < self.assets.p_photo_object:
                pool = self.assets.textures["furniture"]
                mat = photo_material(rng, pool[int(rng.integers(len(pool)))], (0.4, 1.5))
            else:
                mat = tex_material(rng, list(ot.colours), list(ot.patterns))
            scaled = MeshShape(shape.vertices * scale.astype(np.float32), shape.triangles)
            prim = MeshPrimitive(center=origin + R @ (offset * scale), yaw=yaw, shape=scaled)
            self.parts.append(Part(prim, mat, obj))
        if ot.support:
            self.supports.append((origin, yaw, w, d, z + h))
        return obj

    def room_materials(self, mats: list) -> list:
        """The room's faces, some with photo textures of walls, floors and ceilings (asset libraries only)."""
        if self.assets is None:
            return mats
        rng, out = self.asset_rng, list(mats)
        for use, faces, tile in (("wall", (0, 1, 2, 3), (1.0, 2.5)), ("floor", (4,), (0.8, 2.0)),
                                 ("ceiling", (5,), (1.5, 3.0))):
            pool = self.assets.textures.get(use)
            if pool and rng.random() < self.assets.p_photo_room:
                mat = photo_material(rng, pool[int(rng.integers(len(pool)))], tile)
                for f in faces:
                    out[f] = mat
        return out

    def chosen(self, chances: tuple[tuple[str, float], ...]) -> Iterator[str]:
        """The names of ``chances`` ((name, probability), ...) whose coin comes up, each drawn lazily just before
        the caller places it (the random stream is that of drawing and placing in turn)."""
        for name, p in chances:
            if self.rng.random() < p:
                yield name

    def _wall_taken(self, code: int, rect: tuple[float, float, float, float]) -> bool:
        """Whether the (along0, along1, z0, z1) rectangle overlaps something already on wall ``code``."""
        return any(rect[1] > a0 and rect[0] < a1 and rect[3] > b0 and rect[2] < b1
                   for a0, a1, b0, b1 in self.wall_rects[code])

    def _along(self, code: int) -> float:
        return float(self.room[1] if code == 1 else self.room[0])

    def wall_pose(self, code: int, s: float, d: float, gap: float = 0.0) -> tuple[float, float, float]:
        off = d / 2 + gap
        x = float(self.room[0] - off) if code == 1 else s
        y = s if code == 1 else (float(self.room[1] - off) if code == 3 else off)
        return x, y, _yaw_facing_wall(*WALLS[code])

    def against_wall(self, name: str, code: int | None = None, s: float | None = None,
                     size: tuple[float, float, float] | None = None, z: float = 0.0, keepout: float = 0.6,
                     tries: int = 12) -> Placement | None:
        """Put ``name`` with its back to a wall (``z`` > 0: hung on it); None where it does not fit."""
        for _ in range(tries):
            w, d, h = size if size is not None else self.size_of(name)
            c = int(self.rng.choice(list(WALLS))) if code is None else code
            along = self._along(c)
            if along < w + 0.1 or z + h > self.room[2] - 0.02:
                continue
            ss = float(self.rng.uniform(w / 2 + 0.05, along - w / 2 - 0.05)) if s is None else s
            if ss - w / 2 < 0 or ss + w / 2 > along:
                continue
            x, y, yaw = self.wall_pose(c, ss, d, float(self.rng.uniform(0.0, 0.03)) if z == 0 else 0.0)
            fp = self._footprint(x, y, w, d, yaw)
            rect = (ss - w / 2, ss + w / 2, z, z + h)
            if self._wall_taken(c, rect):
                continue
            if z == 0 and not self._free(fp, keepout=keepout):
                continue
            if z == 0:
                self.footprints.append(fp)
            self.wall_rects[c].append(rect)
            obj = self.add_object(name, x, y, z, yaw, w, d, h)
            return Placement(c, ss, x, y, yaw, w, d, h, obj)
        return None

    def at(self, name: str, x: float, y: float, yaw: float, size=None, keepout: float = 0.9,
           register: bool = True) -> bool:
        """``name`` at a floor pose if it fits; ``register=False``: it may overlap others (rugs under furniture,
        chairs pushed under desks) and does not block them."""
        w, d, h = size if size is not None else self.size_of(name)
        fp = self._footprint(x, y, w, d, yaw)
        if register and not self._free(fp, keepout=keepout):
            return False
        if not register:
            saved, self.footprints = self.footprints, []
            fits = self._free(fp, keepout=keepout)
            self.footprints = saved
            if not fits:
                return False
        if register:
            self.footprints.append(fp)
        self.add_object(name, x, y, 0.0, yaw, w, d, h)
        return True

    def anywhere(self, name: str, keepout: float = 1.0, tries: int = 12, axis_aligned: float = 0.6) -> bool:
        for _ in range(tries):
            w, d, h = self.size_of(name)
            x = float(self.rng.uniform(w / 2, self.room[0] - w / 2))
            y = float(self.rng.uniform(d / 2, self.room[1] - d / 2))
            yaw = float(self.rng.integers(4)) * math.pi / 2 + float(self.rng.normal(0, 0.08)) \
                if self.rng.random() < axis_aligned else float(self.rng.uniform(-math.pi, math.pi))
            if self.at(name, x, y, yaw, (w, d, h), keepout):
                return True
        return False

    def beside(self, p: Placement, name: str, side: int, gap: float = 0.05) -> Placement | None:
        w, d, h = self.size_of(name)
        s = p.s + side * (p.w / 2 + gap + w / 2)
        return self.against_wall(name, p.code, s, (w, d, h), tries=1)

    def in_front(self, p: Placement, name: str, dist: float, facing: bool = True, keepout: float = 0.8,
                 size=None, register: bool = True) -> bool:
        """``name`` at ``dist`` metres in front of a wall piece, turned towards it (or with it)."""
        w, d, h = size if size is not None else self.size_of(name)
        wx, wy = WALLS[p.code]
        reach = p.d / 2 + dist + d / 2
        x, y = p.x - wx * reach, p.y - wy * reach
        yaw = p.yaw + (math.pi if facing else 0.0) + float(self.rng.normal(0, 0.1))
        return self.at(name, x, y, yaw, (w, d, h), keepout, register)

    def on_top(self, names: tuple[str, ...], n: int, only: list | None = None) -> None:
        """Up to ``n`` items from ``names`` on each support (or on the supports in ``only``)."""
        for origin, yaw, w, d, top in list(self.supports if only is None else only):
            if top > 1.5:
                continue
            taken: list[tuple[float, float, float, float]] = []
            for _ in range(int(self.rng.integers(0, n + 1))):
                name = str(self.rng.choice(names))
                iw, idp, ih = self.size_of(name)
                if iw > w - 0.04 or idp > d - 0.04:
                    continue
                lx = float(self.rng.uniform(-(w - iw) / 2, (w - iw) / 2))
                ly = float(self.rng.uniform(-(d - idp) / 2, (d - idp) / 2))
                box = (lx - iw / 2, lx + iw / 2, ly - idp / 2, ly + idp / 2)
                if any(box[1] > a0 and box[0] < a1 and box[3] > b0 and box[2] < b1 for a0, a1, b0, b1 in taken):
                    continue
                taken.append(box)
                p = origin + np.array([math.cos(yaw) * lx - math.sin(yaw) * ly,
                                       math.sin(yaw) * lx + math.cos(yaw) * ly, 0.0])
                self.add_object(name, float(p[0]), float(p[1]), top, yaw + float(self.rng.normal(0, 0.15)),
                                iw, idp, ih)
                if name == "table lamp":
                    self.lamp_light(np.array([p[0], p[1], top + ih * 0.8]))

    def lamp_light(self, pos: np.ndarray, intensity: float | None = None) -> None:
        if len(self.lights) < 5:
            self.lights.append(RoomLight(float(self.rng.uniform(0.5, 1.0)) if intensity is None else intensity,
                                         position=pos, colour=WARM * self.rng.uniform(0.95, 1.05, 3).astype(np.float32),
                                         axis=np.array([0.0, 0.0, -1.0]), lobe=0.5, reach=1.2))

    def wall_item(self, name: str, code: int | None = None, s: float | None = None, tries: int = 10,
                  z0: float | None = None, size: tuple[float, float] | None = None) -> tuple | None:
        """A flat item on a wall (with its frame); returns (code, s, z0, w, h) or None."""
        it = NYUD_WALL_ITEMS[name]
        for _ in range(tries):
            c = int(self.rng.choice(list(WALLS))) if code is None else code
            along = self._along(c)
            w, h = size if size is not None else (float(self.rng.uniform(*it.w)), float(self.rng.uniform(*it.h)))
            z = float(self.rng.uniform(*it.z0)) if z0 is None else z0
            if along < w + 0.2 or z + h > self.room[2] - 0.05:
                continue
            ss = float(self.rng.uniform(w / 2 + 0.1, along - w / 2 - 0.1)) if s is None else s
            rect = (ss - w / 2, ss + w / 2, z, z + h)
            if self._wall_taken(c, rect):
                continue
            self.wall_rects[c].append(rect)
            t = float(self.rng.uniform(*it.t))
            x, y, yaw = self.wall_pose(c, ss, t)
            obj = len(self.labels)
            self.labels.append(CLASS_ID[it.label])
            emissive = float(self.rng.uniform(1.2, 2.2)) if name == "window" else 0.0
            mat = tex_material(self.rng, list(it.colours), list(it.patterns), emissive=emissive,
                               gloss=(0.2, 0.5) if name in ("mirror", "whiteboard", "picture") else (0.0, 0.05),
                               emit_colour=tuple(DAYLIGHT))
            centre = np.array([x, y, z + h / 2])
            self.parts.append(Part(Box(center=centre, yaw=yaw, half=np.array([w / 2, t / 2, h / 2])), mat, obj))
            if it.frame > 0:  # four frame bars, a little proud of the item
                fw = it.frame
                fmat = tex_material(self.rng, list(WOOD + [0, 1, 5, 6]), ["wood", "plain"])
                wx, wy = WALLS[c]
                out = -np.array([wx, wy, 0.0]) * 0.01
                for dx, dz, hw, hh in ((0.0, h / 2, w / 2 + fw, fw / 2), (0.0, -h / 2, w / 2 + fw, fw / 2),
                                       (-w / 2 - fw / 2, 0.0, fw / 2, h / 2), (w / 2 + fw / 2, 0.0, fw / 2, h / 2)):
                    if name == "door" and dz < 0:
                        continue
                    along_vec = np.array([math.cos(yaw), math.sin(yaw), 0.0])
                    cc = centre + along_vec * dx + np.array([0, 0, dz]) + out
                    self.parts.append(Part(Box(center=cc, yaw=yaw, half=np.array([hw, t / 2 + 0.01, hh])), fmat, obj))
            if name == "window":
                self.window_light(c, ss, z, w, h)
                self.window_dressing(c, ss, z, w, h)
            if name == "door":
                along_vec = np.array([math.cos(yaw), math.sin(yaw), 0.0])
                wx, wy = WALLS[c]
                knob = (centre + along_vec * (w / 2 - 0.08) + np.array([0, 0, 1.0 - h / 2])
                        - np.array([wx, wy, 0]) * (t / 2 + 0.03))
                self.parts.append(Part(Box(center=knob, yaw=yaw, half=np.array([0.06, 0.03, 0.012])),
                                       tex_material(self.rng, [3, 4, 19], ["metal"], gloss=(0.3, 0.6)), obj))
            return c, ss, z, w, h
        return None

    def window_light(self, code: int, s: float, z: float, w: float, h: float) -> None:
        wx, wy = WALLS[code]
        x, y, _ = self.wall_pose(code, s, 0.0)
        pos = np.array([x - wx * 0.35, y - wy * 0.35, z + h * 0.7])
        inward = np.array([-wx, -wy, -_window_tilt(self.rng)])
        self.lights.append(RoomLight(float(self.rng.uniform(1.0, 2.5)), position=pos,
                                     colour=DAYLIGHT * self.rng.uniform(0.95, 1.05, 3).astype(np.float32),
                                     axis=inward / np.linalg.norm(inward), lobe=1.5, reach=3.0))

    def window_dressing(self, code: int, s: float, z: float, w: float, h: float) -> None:
        """Blinds over a window, or curtains beside it (each a separate object)."""
        r = self.rng.random()
        wx, wy = WALLS[code]
        yaw = _yaw_facing_wall(wx, wy)
        along = np.array([math.cos(yaw), math.sin(yaw), 0.0])
        x, y, _ = self.wall_pose(code, s, 0.0)
        base = np.array([x, y, 0.0]) - np.array([wx, wy, 0.0]) * 0.1
        if r < 0.35:  # blinds: down over part of the window
            bh = h * float(self.rng.uniform(0.2, 1.0))
            obj = len(self.labels)
            self.labels.append(CLASS_ID["blinds"])
            c = base + np.array([0, 0, z + h - bh / 2 + 0.03])
            self.parts.append(Part(Box(center=c, yaw=yaw, half=np.array([w / 2 + 0.03, 0.015, bh / 2])),
                                   tex_material(self.rng, list(LIGHT + [4, 8]), ["slats"], stretch=False), obj))
        elif r < 0.8:  # curtains on one or both sides
            top = min(float(self.room[2]) - 0.05, z + h + 0.25)
            cz = float(self.rng.uniform(0.05, 0.3)) if self.rng.random() < 0.6 else z - 0.1
            mat = tex_material(self.rng, list(ANY), ["folds", "fabric"])
            for side in ((-1, 1) if self.rng.random() < 0.7 else (int(self.rng.choice([-1, 1])),)):
                cw = float(self.rng.uniform(0.25, 0.6))
                obj = len(self.labels)
                self.labels.append(CLASS_ID["curtain"])
                c = base + along * side * (w / 2 + cw / 2 - 0.1) + np.array([0, 0, (top + cz) / 2])
                self.parts.append(Part(Box(center=c, yaw=yaw, half=np.array([cw / 2, 0.05, (top - cz) / 2])), mat, obj))

    def ceiling_lights(self, n: int, colour: np.ndarray) -> None:
        for _ in range(n):
            x = float(self.rng.uniform(0.3, 0.8)) * float(self.room[0])
            y = float(self.rng.uniform(0.25, 0.75)) * float(self.room[1])
            w, _, h = self.size_of("ceiling light")
            top = float(self.room[2])
            obj = len(self.labels)
            self.labels.append(CLASS_ID["lamp"])
            mat = tex_material(self.rng, [0, 2], ["plain"], emissive=float(self.rng.uniform(1.5, 3.0)),
                               emit_colour=tuple(colour))
            self.parts.append(Part(Cylinder(center=np.array([x, y, top - h / 2]), radius=w / 2, half_height=h / 2),
                                   mat, obj))
            self.lights.append(RoomLight(float(self.rng.uniform(1.2, 2.4)), position=np.array([x, y, top - h - 0.02]),
                                         colour=colour * self.rng.uniform(0.97, 1.03, 3).astype(np.float32),
                                         axis=np.array([0.0, 0.0, -1.0]), lobe=float(self.rng.uniform(0.5, 1.5)),
                                         reach=float(self.rng.uniform(2.0, 3.5))))


def _window_tilt(rng: np.random.Generator) -> float:
    """Downward component of a window light's axis (daylight comes in from above the horizon)."""
    return float(rng.uniform(0.1, 0.5))


# --------------------------------------------------------------------------------------------------
# Room recipes
# --------------------------------------------------------------------------------------------------

def _bedroom(b: RoomBuilder) -> None:
    bed = b.against_wall("bed", code=int(b.rng.choice([1, 2, 3])))
    if bed is not None:
        for side in (-1, 1):
            if b.rng.random() < 0.75:
                ns = b.beside(bed, "night stand", side)
                if ns is not None and b.rng.random() < 0.7:
                    w, d, h = b.size_of("table lamp")
                    b.add_object("table lamp", ns.x, ns.y, ns.h, ns.yaw, w, w, h)
                    b.lamp_light(np.array([ns.x, ns.y, ns.h + h * 0.8]))
        if b.rng.random() < 0.5:
            b.in_front(bed, "floor mat", -0.6, keepout=0.3, register=False)
    for name in b.chosen((("wardrobe", 0.5), ("dresser", 0.6), ("desk", 0.3), ("bookshelf", 0.3), ("shelves", 0.2))):
        q = b.against_wall(name)
        if q is not None and name == "desk":
            b.in_front(q, "chair", -0.15, register=False)
    for name in b.chosen((("chair", 0.3), ("clothes", 0.5), ("bag", 0.4), ("box", 0.3), ("clothes", 0.3),
                          ("floor lamp", 0.2))):
        b.anywhere(name)
    _clutter(b, 2, 5)
    b.on_top(ON_DRESSER, 4)
    _wall_items(b, {"picture": (1, 3), "window": (0, 2), "door": (0, 1), "mirror": (0, 1)})


def _kitchen(b: RoomBuilder) -> None:
    wall = int(b.rng.choice([1, 2, 3]))
    along = b._along(wall)
    s = 0.0
    pieces = ["counter", "stove", "counter", "refridgerator", "counter"] + (["appliance"] if b.rng.random() < 0.5 else [])
    b.rng.shuffle(pieces)
    for name in pieces:
        w, d, h = b.size_of(name)
        if s + w > along - 0.05:
            break
        p = b.against_wall(name, wall, s + w / 2 + 0.02, (w, d, h), keepout=0.5, tries=1)
        if p is not None and name in ("counter", "stove") and b.rng.random() < 0.8:
            cw, cd, ch = b.size_of("wall cabinet")
            b.against_wall("wall cabinet", wall, p.s, (p.w, cd, ch), z=float(b.rng.uniform(1.4, 1.55)), tries=1)
        s += w + 0.02
    if b.rng.random() < 0.5:  # a second counter run on a side wall
        side = 2 if wall != 2 else 3
        b.against_wall("counter", side, keepout=0.5)
    if b.rng.random() < 0.5:
        if b.anywhere("table", keepout=1.0):
            _chairs_of_last_table(b)
    for name in b.chosen((("box", 0.2), ("bag", 0.2), ("plant", 0.15), ("floor mat", 0.3))):
        b.anywhere(name)
    _clutter(b, 0, 3)
    b.on_top(ON_COUNTER, 6)
    _wall_items(b, {"window": (0, 2), "door": (0, 1), "picture": (0, 1), "towel": (0, 1)})


def _living_room(b: RoomBuilder) -> None:
    sofa = b.against_wall("sofa", code=int(b.rng.choice([1, 2, 3])))
    if sofa is not None:
        w, d, h = b.size_of("coffee table")
        b.in_front(sofa, "floor mat", 0.05, keepout=0.3, size=(w + 0.8, d + 0.9, 0.01), register=False)
        b.in_front(sofa, "coffee table", 0.45, keepout=0.8, size=(w, d, h))
        if b.rng.random() < 0.6:
            b.beside(sofa, "night stand", int(b.rng.choice([-1, 1])))
    for name in b.chosen((("armchair", 0.5), ("tv stand", 0.6), ("bookshelf", 0.4), ("shelves", 0.3),
                          ("cabinet", 0.3))):
        if name == "armchair":
            b.anywhere(name, axis_aligned=0.3)
        else:
            q = b.against_wall(name)
            if q is not None and name == "tv stand":
                tw, td, th = b.size_of("television")
                tw = min(tw, q.w - 0.05)
                b.add_object("television", q.x, q.y, q.h, q.yaw, tw, td, th)
    for name in b.chosen((("floor lamp", 0.5), ("plant", 0.4), ("box", 0.2), ("bag", 0.2), ("person", 0.15))):
        b.anywhere(name)
    _clutter(b, 1, 4)
    b.on_top(ON_TABLE, 4)
    _wall_items(b, {"picture": (1, 4), "window": (1, 2), "door": (0, 1), "mirror": (0, 1)})


def _bathroom(b: RoomBuilder) -> None:
    walls = [1, 2, 3]
    b.rng.shuffle(walls)
    tub = b.against_wall("bathtub", walls[0], keepout=0.4)
    if tub is not None and b.rng.random() < 0.7:
        c = int(tub.code)
        x, y, yaw = b.wall_pose(c, tub.s, tub.d * 2 - 0.05)
        obj = len(b.labels)
        b.labels.append(CLASS_ID["shower curtain"])
        ch = float(b.room[2]) - 0.25 - tub.h
        b.parts.append(Part(Box(center=np.array([x, y, tub.h + ch / 2 + 0.1]), yaw=yaw,
                                half=np.array([tub.w / 2 * float(b.rng.uniform(0.3, 1.0)), 0.01, ch / 2])),
                            tex_material(b.rng, list(ANY), ["folds", "stripes"]), obj))
    b.against_wall("toilet", walls[1], keepout=0.4)
    van = b.against_wall("vanity", walls[2], keepout=0.4)
    if van is None:
        van = b.against_wall("vanity", keepout=0.4)
    if van is not None:
        b.wall_item("mirror", van.code, van.s, z0=van.h + 0.25,
                    size=(min(van.w, float(b.rng.uniform(0.5, 0.9))), float(b.rng.uniform(0.6, 0.9))))
    for name in b.chosen((("bath mat", 0.6), ("box", 0.15), ("clothes", 0.2))):
        b.anywhere(name, keepout=0.6)
    b.on_top(ON_COUNTER, 2)
    _wall_items(b, {"towel": (1, 2), "door": (0, 1), "window": (0, 1), "picture": (0, 1)})


def _dining_room(b: RoomBuilder) -> None:
    w, d, h = b.size_of("table")
    x = float(b.room[0]) * float(b.rng.uniform(0.5, 0.65))
    y = float(b.room[1]) * float(b.rng.uniform(0.4, 0.6))
    yaw = float(b.rng.integers(2)) * math.pi / 2 + float(b.rng.normal(0, 0.05))
    if b.at("table", x, y, yaw, (w, d, h), keepout=1.2):
        _chairs_of_last_table(b, table=(x, y, w, d, yaw))
    for name in b.chosen((("dresser", 0.5), ("cabinet", 0.5), ("shelves", 0.2), ("plant", 0.3))):
        b.against_wall(name) if name != "plant" else b.anywhere(name)
    if b.rng.random() < 0.6:  # a pendant lamp over the table
        b.lamp_light(np.array([x, y, float(b.room[2]) - 0.7]), float(b.rng.uniform(0.8, 1.4)))
    b.on_top(ON_TABLE, 4)
    _wall_items(b, {"picture": (1, 3), "window": (1, 2), "door": (0, 1)})


def _office(b: RoomBuilder) -> None:
    for _ in range(int(b.rng.integers(1, 4))):
        q = b.against_wall("desk")
        if q is not None and b.rng.random() < 0.85:
            b.in_front(q, "chair", -0.15, register=False)
    for name in b.chosen((("bookshelf", 0.6), ("shelves", 0.4), ("cabinet", 0.5), ("cabinet", 0.3))):
        b.against_wall(name)
    for name in b.chosen((("box", 0.5), ("box", 0.3), ("bag", 0.4), ("plant", 0.3), ("chair", 0.3),
                          ("person", 0.2))):
        b.anywhere(name)
    _clutter(b, 1, 4)
    b.on_top(ON_DESK, 5)
    _wall_items(b, {"picture": (0, 2), "window": (1, 2), "door": (0, 1), "whiteboard": (0, 1)})


def _classroom(b: RoomBuilder) -> None:
    b.wall_item("whiteboard", 1)
    rows, cols = int(b.rng.integers(2, 4)), int(b.rng.integers(2, 5))
    w, d, h = b.size_of("school desk")
    x0 = float(b.rng.uniform(1.5, 2.2))
    for r in range(rows):
        for c in range(cols):
            x = x0 + r * float(b.rng.uniform(1.2, 1.5))
            y = float(b.room[1]) * (c + 0.5) / cols + float(b.rng.normal(0, 0.05))
            yaw = math.pi / 2 + float(b.rng.normal(0, 0.05))  # front (-y local) towards the whiteboard (+x)
            if x + 1.0 > float(b.room[0]):
                continue
            if b.at("school desk", x, y, yaw, (w, d, h), keepout=1.0):
                cw, cd, ch = b.size_of("chair")
                b.at("chair", x - d / 2 - cd / 2 + 0.05, y, yaw + math.pi, (cw, cd, ch), keepout=0.9, register=False)
    for name in b.chosen((("person", 0.5), ("person", 0.3), ("bag", 0.5), ("cabinet", 0.3))):
        b.anywhere(name) if name != "cabinet" else b.against_wall(name)
    b.on_top(("books", "paper", "paper", "bag", "bottle"), 2)
    _wall_items(b, {"window": (1, 3), "door": (0, 1), "picture": (0, 2)})


def _chairs_of_last_table(b: RoomBuilder, table=None) -> None:
    if table is None:
        x0, x1, y0, y1 = b.footprints[-1]
        x, y, w, d, yaw = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0, 0.0
    else:
        x, y, w, d, yaw = table
    b._chairs_around(x, y, w, d, yaw)


CLUTTER = ("box", "bag", "clothes", "books", "bottle", "bin", "bin", "plant", "vase", "small box", "ball", "clutter")


def _clutter(b: RoomBuilder, lo: int, hi: int) -> None:
    """Things left on the floor."""
    for _ in range(int(b.rng.integers(lo, hi + 1))):
        b.anywhere(str(b.rng.choice(CLUTTER)), keepout=0.8, axis_aligned=0.3)


def _wall_items(b: RoomBuilder, counts: dict[str, tuple[int, int]]) -> None:
    for name, (lo, hi) in counts.items():
        for _ in range(int(b.rng.integers(lo, hi + 1))):
            b.wall_item(name)


def _extras(b: RoomBuilder, room_type: str) -> None:
    """What every kind of room has a little of: columns and radiators (other structure), stools and ottomans (other
    furniture), switches, sockets and clocks on the walls (other props)."""
    if b.rng.random() < 0.4:
        w, d, _ = b.size_of("column")
        b.against_wall("column", size=(w, d, float(b.room[2])), keepout=0.5)
    if b.rng.random() < 0.5:
        b.against_wall("radiator", keepout=0.5)
    seats = {"kitchen": ("stool", 0.5), "living room": ("ottoman", 0.4), "bedroom": ("ottoman", 0.2),
             "office": ("stool", 0.15), "classroom": ("stool", 0.2)}.get(room_type)
    if seats and b.rng.random() < seats[1]:
        for _ in range(int(b.rng.integers(1, 3))):
            b.anywhere(seats[0])
    for _ in range(int(b.rng.integers(1, 4))):  # switches and sockets
        w, d, h = b.size_of("wall plate")
        z = float(b.rng.choice([0.3, 1.1])) + float(b.rng.uniform(-0.02, 0.02))
        b.against_wall("wall plate", size=(w, d, h), z=z, tries=4)
    if b.rng.random() < 0.3:
        w, d, h = b.size_of("clock")
        b.against_wall("clock", size=(w, d, w), z=float(b.rng.uniform(1.8, 2.1)), tries=4)


RECIPES = {"bedroom": _bedroom, "kitchen": _kitchen, "living room": _living_room, "bathroom": _bathroom,
           "dining room": _dining_room, "office": _office, "classroom": _classroom}


def camera_position(rng: np.random.Generator, room: np.ndarray) -> np.ndarray:
    """Where the camera stands: near the wall x = 0, 1.0-1.7 m high (hand-held or on a robot)."""
    return np.array([rng.uniform(0.25, min(1.0, 0.3 * room[0])), rng.uniform(0.25, 0.75) * room[1],
                     float(np.clip(rng.normal(1.35, 0.18), 1.0, 1.7))])


def camera_rotation(rng: np.random.Generator, room: np.ndarray, pos: np.ndarray,
                    footprints: list[tuple[float, float, float, float]]) -> np.ndarray:
    """Where it looks: mostly at a piece of furniture (people point cameras at things; larger pieces more often),
    else into the room; pitch -30..+10 deg (mostly a little down), roll small."""
    target = np.array([room[0] * rng.uniform(0.55, 1.0), room[1] * rng.uniform(0.1, 0.9)])
    far = [fp for fp in footprints if math.hypot((fp[0] + fp[1]) / 2 - pos[0], (fp[2] + fp[3]) / 2 - pos[1]) > 1.2]
    if far and rng.random() < 0.8:
        area = np.array([(fp[1] - fp[0]) * (fp[3] - fp[2]) for fp in far]) ** 0.5
        fp = far[int(rng.choice(len(far), p=area / area.sum()))]
        target = np.array([(fp[0] + fp[1]) / 2, (fp[2] + fp[3]) / 2])
    yaw = math.atan2(target[1] - pos[1], target[0] - pos[0]) + math.radians(float(rng.normal(0.0, 8.0)))
    pitch = math.radians(float(np.clip(rng.normal(-12.0, 9.0), -30.0, 10.0)))
    roll = math.radians(float(np.clip(rng.normal(0.0, 2.0), -6.0, 6.0)))
    return optical_rotation(yaw, pitch, roll)


def sample_room(rng: np.random.Generator, room_type: str | None = None,
                assets: AssetLibrary | None = None) -> RoomScene:
    """Draw a complete nyud-profile room of ``room_type`` (default: drawn with NYUDv2's frequencies); ``assets``:
    furniture meshes, photo textures and HDR light to draw from (``mtlsi_core.data.assets``), None: procedural only
    (the profile's rooms as they always were)."""
    if room_type is None:
        names = list(ROOM_TYPES)
        p = np.array([ROOM_TYPES[n] for n in names])
        room_type = str(rng.choice(names, p=p / p.sum()))
    elif room_type not in RECIPES:
        raise ValueError(f"unknown room type {room_type!r}; choose from {sorted(RECIPES)}")
    room = np.array([rng.uniform(*r) for r in ROOM_SIZES[room_type]])
    cam_pos = camera_position(rng, room)
    b = RoomBuilder(rng, room, cam_pos[:2], assets)
    RECIPES[room_type](b)
    _extras(b, room_type)
    R_wc = camera_rotation(rng, room, cam_pos, b.footprints)
    warm = rng.random() < (0.3 if room_type in ("office", "classroom") else 0.7)
    b.ceiling_lights(int(rng.integers(1, 3)) + (2 if room_type == "classroom" else 0), WARM if warm else COOL)

    wall_pats = ["plaster", "plaster", "plain"] + (["tiles"] if room_type in ("bathroom", "kitchen") else [])
    wall_colours = [0, 1, 2, 3] if rng.random() < 0.7 else LIGHT  # mostly white or off-white
    wall = tex_material(rng, wall_colours, wall_pats, contrast=(0.85, 0.97))
    floor_pats = {"bathroom": ["tiles"], "kitchen": ["tiles", "planks", "noise"], "classroom": ["tiles", "noise"],
                  "office": ["carpet", "tiles", "noise"]}.get(room_type, ["planks", "carpet", "wood", "tiles"])
    floor = tex_material(rng, WOOD + LIGHT + [4, 5], floor_pats, contrast=(0.6, 0.9))
    tiled = room_type in ("office", "classroom") or (room_type == "kitchen" and rng.random() < 0.3)
    ceiling = tex_material(rng, [0, 1, 2], ["tiles"] if tiled else ["plain", "plaster"],
                           contrast=(0.75, 0.85) if tiled else (0.92, 1.0))
    room_mats = [wall, wall, wall, wall, floor, ceiling]
    if rng.random() < 0.15:  # an accent wall
        room_mats[int(rng.integers(1, 4))] = tex_material(rng, ANY, ["plaster", "plain"], contrast=(0.85, 0.97))
    ambient_colour = (WARM if warm else COOL) * 0.5 + 0.5
    ambient = float(rng.uniform(0.08, 0.25))
    environment = b.assets.environment(b.asset_rng, ambient) if b.assets is not None else None
    return RoomScene(room, b.room_materials(room_mats), b.parts, b.labels, b.lights, ambient, cam_pos, R_wc, 1.0,
                     room_type=room_type, ambient_colour=ambient_colour.astype(np.float32), environment=environment)
