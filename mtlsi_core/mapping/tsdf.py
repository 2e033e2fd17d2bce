"""A semantic TSDF: Open3D's ``VoxelBlockGrid`` for geometry, per-voxel label votes beside it.

Geometry: each frame's depth (metres along the optical z axis; non-finite, <= ``depth_min`` or > ``depth_max`` =
no measurement) is integrated by ``VoxelBlockGrid.integrate`` (attributes tsdf, weight and color; the colour image is
the class colour of the labels, so Open3D's averaged voxel colour is a display colour, not a label). Open3D has no
label-histogram integration, so the labels are voted separately on the same grid: every valid pixel's back-projected
map point votes for its label in the voxel nearest to it (keys: integer voxel coordinates), and counts are kept as a
sparse table. ``extract`` runs Open3D's marching cubes (output in a canonical order, ``canonical_mesh``); each vertex
takes the majority label of its voxel (or of the nearest voted voxel among its 26 neighbours; 255 if none), with the
majority's share of the votes as confidence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtlsi_core.data.sequence import backproject
from mtlsi_core.mapping import import_open3d

UNLABELLED = 255
_BITS = 16  # per axis in vote keys: +-32768 voxels (1.3 km at 4 cm)
_OFF = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1


@dataclass(frozen=True)
class TSDFOptions:
    voxel_size: float = 0.04  # m
    trunc_voxels: float = 4.0  # truncation distance in voxels
    depth_min: float = 0.1  # m
    depth_max: float = 6.0  # m
    block_resolution: int = 8
    block_count: int = 20000  # initial hash map capacity (grows when needed)
    weight_threshold: float = 1.0  # of marching cubes: voxels seen fewer times are empty

    def check(self) -> "TSDFOptions":
        if not (0.005 <= self.voxel_size <= 1.0):
            raise ValueError(f"voxel size must be within 0.005..1 m, got {self.voxel_size}")
        if not (0.0 <= self.depth_min < self.depth_max):
            raise ValueError(f"depth range must satisfy 0 <= min < max, got {self.depth_min}..{self.depth_max}")
        if self.trunc_voxels < 1.0:
            raise ValueError(f"truncation must be at least one voxel, got {self.trunc_voxels}")
        return self


@dataclass
class MapResult:
    vertices: np.ndarray  # (V, 3) float32, map frame
    triangles: np.ndarray  # (F, 3) int32
    labels: np.ndarray  # (V,) uint8, 255 = no vote
    confidence: np.ndarray  # (V,) float32, share of the majority label's votes
    colors: np.ndarray  # (V, 3) uint8, class colour
    frames: int


def vote_keys(points: np.ndarray, voxel: float) -> np.ndarray:
    """int64 keys (16 bits per axis) of the nearest voxel grid point of each point."""
    q = np.round(np.asarray(points, np.float64) / voxel).astype(np.int64) + _OFF
    if q.size and (q.min() < 0 or q.max() > _MASK):
        raise ValueError(f"map points beyond +-{_OFF * voxel:.0f} m from the origin")
    return (q[:, 0] << (2 * _BITS)) | (q[:, 1] << _BITS) | q[:, 2]


def check_pose(T: np.ndarray, what: str = "pose") -> np.ndarray:
    T = np.asarray(T, np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"{what} must be a finite 4x4 matrix, got shape {T.shape}")
    R = T[:3, :3]
    if np.abs(R.T @ R - np.eye(3)).max() > 1e-4 or abs(np.linalg.det(R) - 1.0) > 1e-4:
        raise ValueError(f"{what} has a rotation that is not orthonormal (det {np.linalg.det(R):.4f})")
    return T


def check_intrinsics(K: np.ndarray, what: str = "camera matrix") -> np.ndarray:
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"{what} must be a finite 3x3 matrix with fx, fy > 0")
    return K


def class_colors(labels: np.ndarray) -> np.ndarray:
    """(N,) class ids -> (N, 3) uint8 colours of the NYUD palette (255: black)."""
    from mtlsi_core.viz import colorize_labels

    labels = np.asarray(labels).reshape(1, -1)
    if labels.size == 0:
        return np.zeros((0, 3), np.uint8)
    return colorize_labels(labels)[0]


class SemanticTSDF:
    """Integrate (depth, labels, K, T_map_cam) frames; ``extract()`` the labelled mesh."""

    def __init__(self, options: TSDFOptions = TSDFOptions()):
        self.o = options.check()
        o3d = import_open3d()
        self._o3d = o3d
        self._o3c = o3d.core
        c = o3d.core
        self.vbg = o3d.t.geometry.VoxelBlockGrid(
            attr_names=("tsdf", "weight", "color"), attr_dtypes=(c.float32, c.float32, c.float32),
            attr_channels=((1), (1), (3)), voxel_size=float(self.o.voxel_size),
            block_resolution=int(self.o.block_resolution), block_count=int(self.o.block_count),
            device=c.Device("CPU:0"))
        self._keys = np.zeros(0, np.int64)  # (voxel key << 8) | label
        self._counts = np.zeros(0, np.int64)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self.frames = 0
        self.empty_frames = 0  # frames without a valid depth pixel

    def integrate(self, depth: np.ndarray, labels: np.ndarray, K: np.ndarray, T_map_cam: np.ndarray) -> None:
        """One frame: ``depth`` (H, W) metres along z, ``labels`` (H, W) class ids (255 = none), ``K`` its 3x3
        camera matrix, ``T_map_cam`` the camera's pose in the map. ValueError on inconsistent input."""
        depth = np.asarray(depth)
        labels = np.asarray(labels)
        if depth.ndim != 2:
            raise ValueError(f"depth must be an (H, W) image, got shape {depth.shape}")
        if labels.shape != depth.shape:
            raise ValueError(f"depth is {depth.shape[0]}x{depth.shape[1]} but labels are "
                             f"{'x'.join(map(str, labels.shape))}: they must be the same size")
        if labels.dtype.kind not in "ui":
            raise ValueError(f"labels must be integer class ids, got {labels.dtype}")
        K = check_intrinsics(K)
        T = check_pose(T_map_cam)
        o3d, c = self._o3d, self._o3c
        d = np.array(depth, np.float32)
        bad = ~np.isfinite(d) | (d <= self.o.depth_min) | (d > self.o.depth_max)
        d[bad] = 0.0
        self.frames += 1
        if not (d > 0).any():  # nothing measured (Open3D refuses a frame that touches no block)
            self.empty_frames += 1
            return
        color = (class_colors(labels.reshape(-1)).reshape(*labels.shape, 3).astype(np.float32) / 255.0)
        dimg = o3d.t.geometry.Image(c.Tensor(np.ascontiguousarray(d)))
        cimg = o3d.t.geometry.Image(c.Tensor(np.ascontiguousarray(color)))
        intr = c.Tensor(K, c.float64)
        extr = c.Tensor(np.linalg.inv(T), c.float64)  # Open3D's extrinsic: map -> camera
        blocks = self.vbg.compute_unique_block_coordinates(dimg, intr, extr, 1.0, float(self.o.depth_max),
                                                           float(self.o.trunc_voxels))
        self.vbg.integrate(blocks, dimg, cimg, intr, intr, extr, 1.0, float(self.o.depth_max),
                           float(self.o.trunc_voxels))
        # label votes on the same grid
        pts, idx = backproject(d, K, T)
        lab = labels.reshape(-1)[idx].astype(np.int64)
        keep = (lab >= 0) & (lab < UNLABELLED)
        if keep.any():
            self._pending.append((vote_keys(pts[keep], self.o.voxel_size) << 8) | lab[keep])
            self._pending_n += int(keep.sum())
            if self._pending_n > 4_000_000:
                self._compress()

    def _compress(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self._keys, *self._pending])
        counts = np.concatenate([self._counts, np.ones(self._pending_n, np.int64)])
        uniq, inv = np.unique(keys, return_inverse=True)
        self._keys, self._counts = uniq, np.bincount(inv, weights=counts, minlength=len(uniq)).astype(np.int64)
        self._pending, self._pending_n = [], 0

    def voxel_labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(voxel keys sorted, majority label, majority share) of every voxel with votes."""
        self._compress()
        if len(self._keys) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.uint8), np.zeros(0, np.float32)
        vox = self._keys >> 8
        order = np.lexsort((self._counts, vox))  # per voxel, the largest count last
        vox_s, cnt_s, lab_s = vox[order], self._counts[order], (self._keys[order] & 0xFF)
        last = np.ones(len(vox_s), bool)
        last[:-1] = vox_s[1:] != vox_s[:-1]
        start = np.flatnonzero(np.r_[True, vox_s[1:] != vox_s[:-1]])
        totals = np.add.reduceat(cnt_s, start)
        return vox_s[last], lab_s[last].astype(np.uint8), (cnt_s[last] / totals).astype(np.float32)

    def label_points(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels, confidence) of map points from the votes of their voxel, else the nearest voted neighbour."""
        keys, labs, conf = self.voxel_labels()
        n = len(points)
        out_l = np.full(n, UNLABELLED, np.uint8)
        out_c = np.zeros(n, np.float32)
        if n == 0 or len(keys) == 0:
            return out_l, out_c
        q = np.round(np.asarray(points, np.float64) / self.o.voxel_size).astype(np.int64) + _OFF
        offsets = sorted(((dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)),
                         key=lambda o: abs(o[0]) + abs(o[1]) + abs(o[2]))
        todo = np.arange(n)
        for dx, dy, dz in offsets:
            if len(todo) == 0:
                break
            k = ((q[todo, 0] + dx) << (2 * _BITS)) | ((q[todo, 1] + dy) << _BITS) | (q[todo, 2] + dz)
            pos = np.clip(np.searchsorted(keys, k), 0, len(keys) - 1)
            hit = keys[pos] == k
            out_l[todo[hit]] = labs[pos[hit]]
            out_c[todo[hit]] = conf[pos[hit]]
            todo = todo[~hit]
        return out_l, out_c

    def extract(self) -> MapResult:
        """Marching cubes of the TSDF; vertices labelled by the votes (module docstring)."""
        if self.frames == 0:
            raise ValueError("no frame was integrated")
        mesh = self.vbg.extract_triangle_mesh(float(self.o.weight_threshold)) if self.frames > self.empty_frames \
            else None
        if mesh is not None and "positions" in mesh.vertex and mesh.vertex.positions.shape[0] > 0:
            verts = mesh.vertex.positions.numpy().astype(np.float32)
            tris = mesh.triangle.indices.numpy().astype(np.int32)
        else:
            verts, tris = np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)
        verts, tris = canonical_mesh(verts, tris)
        labels, conf = self.label_points(verts)
        return MapResult(verts, tris, labels, conf, class_colors(labels), self.frames)


def canonical_mesh(vertices: np.ndarray, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mesh with vertices sorted by (x, y, z) and triangles by their (rotated, orientation-keeping) indices:
    Open3D's parallel hash map orders its output differently from run to run; the same TSDF gives the same arrays."""
    if len(vertices) == 0:
        return vertices, triangles
    order = np.lexsort((vertices[:, 2], vertices[:, 1], vertices[:, 0]))
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    t = rank[triangles]
    shift = np.argmin(t, axis=1)  # rotate each triangle to start at its smallest index (orientation kept)
    t = np.take_along_axis(t, (np.arange(3)[None, :] + shift[:, None]) % 3, axis=1)
    t = t[np.lexsort((t[:, 2], t[:, 1], t[:, 0]))]
    return vertices[order], t.astype(np.int32)


def build_map(frames, options: TSDFOptions = TSDFOptions()) -> MapResult:
    """A map from an iterable of (depth, labels, K, T_map_cam)."""
    tsdf = SemanticTSDF(options)
    for depth, labels, K, T in frames:
        tsdf.integrate(depth, labels, K, T)
    return tsdf.extract()


__all__ = ["MapResult", "SemanticTSDF", "TSDFOptions", "UNLABELLED", "build_map", "canonical_mesh", "check_intrinsics",
           "check_pose", "class_colors", "vote_keys"]
