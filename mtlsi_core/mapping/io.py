"""Map files, written atomically: PLY (binary little-endian) meshes and labelled point clouds, npz arrays, PNG, and
a folder of outputs that appears only once complete (``AtomicFolder``)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mtlsi_core.checkpoint import atomic_write, atomic_write_bytes


def ply_points_bytes(points: np.ndarray, colors: np.ndarray, labels: np.ndarray,
                     confidence: np.ndarray | None = None) -> bytes:
    """A PLY point cloud with x, y, z (float), red, green, blue (uchar), label (uchar, 255 = none) and, if given,
    confidence (float)."""
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
              ("label", "u1")]
    if confidence is not None:
        fields.append(("confidence", "<f4"))
    arr = np.zeros(len(points), dtype=fields)
    p = np.asarray(points, np.float32)
    arr["x"], arr["y"], arr["z"] = p[:, 0], p[:, 1], p[:, 2]
    c = np.asarray(colors, np.uint8)
    arr["red"], arr["green"], arr["blue"] = c[:, 0], c[:, 1], c[:, 2]
    arr["label"] = np.asarray(labels, np.uint8)
    if confidence is not None:
        arr["confidence"] = confidence
    kinds = {"<f4": "float", "u1": "uchar"}
    header = "ply\nformat binary_little_endian 1.0\ncomment mtlsi_ros semantic map (label: NYUDv2 class id, 0-based)\n"
    header += f"element vertex {len(arr)}\n" + "".join(f"property {kinds[t]} {n}\n" for n, t in fields)
    return (header + "end_header\n").encode() + arr.tobytes()


def ply_mesh_bytes(vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray, labels: np.ndarray) -> bytes:
    """A PLY triangle mesh, vertex colour = class colour, vertex label."""
    head = ply_points_bytes(vertices, colors, labels)
    header, body = head.split(b"end_header\n", 1)
    faces = np.zeros(len(triangles), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    faces["n"] = 3
    faces["i"] = np.asarray(triangles, np.int32)
    header += f"element face {len(faces)}\nproperty list uchar int vertex_indices\n".encode()
    return header + b"end_header\n" + body + faces.tobytes()


def read_ply_vertices(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The vertex element of a PLY written here (for tests and tools)."""
    data = Path(path).read_bytes()
    header, body = data.split(b"end_header\n", 1)
    fields, n, in_vertex = [], 0, False
    kinds = {"float": "<f4", "uchar": "u1", "int": "<i4"}
    for line in header.decode().splitlines():
        parts = line.split()
        if parts[:2] == ["element", "vertex"]:
            n, in_vertex = int(parts[2]), True
        elif parts[:1] == ["element"]:
            in_vertex = False
        elif parts[:1] == ["property"] and in_vertex:
            fields.append((parts[2], kinds[parts[1]]))
    arr = np.frombuffer(body, dtype=fields, count=n)
    return {name: arr[name].copy() for name, _ in fields}


def write_npz(path: str | os.PathLike, **arrays: Any) -> None:
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    import cv2

    ok, png = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode {path}")
    atomic_write_bytes(path, png.tobytes())


class AtomicFolder:
    """``with AtomicFolder(target, overwrite) as tmp:`` write files into ``tmp``; on success it is renamed onto
    ``target`` (an existing one replaced only then, with ``overwrite``), on an exception removed: a reader never
    sees a half-written output folder."""

    def __init__(self, target: str | os.PathLike, overwrite: bool = False):
        self.target = Path(target)
        self.overwrite = overwrite
        self.tmp = self.target.parent / f".{self.target.name}.partial-{os.getpid()}"

    def __enter__(self) -> Path:
        t = self.target
        if t.exists() and not self.overwrite:
            raise FileExistsError(f"{t} exists already; choose another output or allow overwriting")
        if not t.parent.is_dir():
            raise FileNotFoundError(f"{t}: the folder {t.parent} does not exist")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()
        return self.tmp

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        old = None
        if self.target.exists():
            old = self.target.parent / f".{self.target.name}.old-{os.getpid()}"
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


__all__ = ["AtomicFolder", "ply_mesh_bytes", "ply_points_bytes", "read_ply_vertices", "write_npz", "write_png"]
