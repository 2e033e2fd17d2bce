"""The built-in asset set: a few furniture meshes made with ``trimesh.creation`` (rounded, bevelled and turned
shapes the analytic caster cannot make), so that the mesh path of the generator runs where no asset folder was
downloaded (CI, a fresh clone). Local frame as the rooms' objects: x = width, y = depth (front at -y), z up, metres.
"""
from __future__ import annotations

import numpy as np
import trimesh
from trimesh import creation

Part = tuple[np.ndarray, np.ndarray]


def _at(mesh: trimesh.Trimesh, x: float, y: float, z: float) -> Part:
    return np.asarray(mesh.vertices) + (x, y, z), np.asarray(mesh.faces)


def _box(w: float, d: float, h: float, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> Part:
    return _at(creation.box((w, d, h)), x, y, z + h / 2)


def _leg(r: float, h: float, x: float, y: float, z: float = 0.0) -> Part:
    return _at(creation.cylinder(r, h, sections=12), x, y, z + h / 2)


def _rounded(w: float, d: float, h: float, x: float, y: float, z: float) -> Part:
    """A cushion: a box with rounded edges (a capsule-swept box, by scaling an icosphere's coordinates)."""
    s = creation.icosphere(subdivisions=2)
    v = np.asarray(s.vertices)
    v = np.sign(v) * np.abs(v) ** 0.35  # squarish superellipsoid
    return v * (w / 2, d / 2, h / 2) + (x, y, z + h / 2), np.asarray(s.faces)


def _join(parts: list[Part]) -> Part:
    verts, faces, n = [], [], 0
    for v, f in parts:
        verts.append(v)
        faces.append(f + n)
        n += len(v)
    return np.concatenate(verts), np.concatenate(faces)


def _chair() -> list[Part]:
    legs = _join([_leg(0.018, 0.44, sx * 0.2, sy * 0.19) for sx in (-1, 1) for sy in (-1, 1)])
    return [legs, _rounded(0.46, 0.44, 0.06, 0, 0, 0.44), _box(0.44, 0.04, 0.42, 0, 0.2, 0.5)]


def _armchair() -> list[Part]:
    base = _rounded(0.82, 0.8, 0.42, 0, 0, 0.0)
    back = _rounded(0.82, 0.2, 0.48, 0, 0.3, 0.38)
    arms = _join([_rounded(0.14, 0.76, 0.26, sx * 0.34, 0, 0.38) for sx in (-1, 1)])
    return [base, back, arms]


def _sofa() -> list[Part]:
    base = _box(1.9, 0.85, 0.25, 0, 0, 0.08)
    feet = _join([_leg(0.025, 0.08, sx * 0.88, sy * 0.36) for sx in (-1, 1) for sy in (-1, 1)])
    seats = _join([_rounded(0.58, 0.62, 0.16, x, -0.06, 0.33) for x in (-0.6, 0.0, 0.6)])
    back = _join([_rounded(0.6, 0.2, 0.42, x, 0.32, 0.33) for x in (-0.6, 0.0, 0.6)])
    arms = _join([_rounded(0.16, 0.85, 0.3, sx * 0.87, 0, 0.33) for sx in (-1, 1)])
    return [base, seats, back, arms, feet]


def _round_table() -> list[Part]:
    top = _at(creation.cylinder(0.5, 0.04, sections=48), 0, 0, 0.73)
    stem = _leg(0.04, 0.71, 0, 0)
    foot = _at(creation.cylinder(0.26, 0.03, sections=32), 0, 0, 0.015)
    return [top, _join([stem, foot])]


def _table() -> list[Part]:
    top = _box(1.4, 0.8, 0.035, 0, 0, 0.715)
    legs = _join([_box(0.06, 0.06, 0.715, sx * 0.64, sy * 0.34) for sx in (-1, 1) for sy in (-1, 1)])
    apron = _join([_box(1.24, 0.02, 0.08, 0, sy * 0.36, 0.635) for sy in (-1, 1)])
    return [top, _join([legs, apron])]


def _lamp() -> list[Part]:
    shade = creation.cone(0.16, 0.22, sections=32)
    shade.vertices = np.asarray(shade.vertices) * (1, 1, -1)  # narrow end up
    base = _at(creation.cylinder(0.08, 0.03, sections=24), 0, 0, 0.015)
    stem = _leg(0.012, 0.34, 0, 0, 0.03)
    return [_at(shade, 0, 0, 0.52), _join([base, stem])]


def _vase_plant() -> list[Part]:
    profile = np.array([[0.0, 0.0], [0.09, 0.0], [0.12, 0.08], [0.1, 0.22], [0.06, 0.3], [0.07, 0.33], [0.0, 0.33]])
    pot = creation.revolve(profile, sections=32)
    leaves = _join([_at(creation.icosphere(subdivisions=1, radius=0.12), 0.05 * np.cos(a), 0.05 * np.sin(a),
                        0.42 + 0.06 * k) for k, a in enumerate(np.linspace(0, 2 * np.pi, 5, endpoint=False))])
    return [(np.asarray(pot.vertices), np.asarray(pot.faces)), leaves]


def _bed() -> list[Part]:
    frame = _box(1.6, 2.05, 0.3, 0, 0, 0.05)
    feet = _join([_box(0.06, 0.06, 0.05, sx * 0.77, sy * 0.99) for sx in (-1, 1) for sy in (-1, 1)])
    mattress = _rounded(1.56, 2.0, 0.2, 0, 0, 0.33)
    pillows = _join([_rounded(0.6, 0.38, 0.13, sx * 0.38, 0.72, 0.52) for sx in (-1, 1)])
    head = _box(1.6, 0.06, 0.95, 0, 1.02, 0.05)
    return [_join([frame, feet]), mattress, pillows, head]


def builtin_meshes() -> list[tuple[str, str, list[Part]]]:
    """(object type of rooms.NYUD_TYPES, name, parts) of every built-in mesh."""
    return [("chair", "builtin chair", _chair()), ("armchair", "builtin armchair", _armchair()),
            ("sofa", "builtin sofa", _sofa()), ("table", "builtin round table", _round_table()),
            ("table", "builtin table", _table()), ("table lamp", "builtin lamp", _lamp()),
            ("plant", "builtin plant", _vase_plant()), ("bed", "builtin bed", _bed())]
