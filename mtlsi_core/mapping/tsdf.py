"""A semantic TSDF: Open3D's ``VoxelBlockGrid`` for geometry, per-voxel label votes beside it.

Geometry: each frame's depth (metres along the optical z axis; non-finite, <= ``depth_min`` or > ``depth_max`` =
no measurement) is integrated by ``VoxelBlockGrid.integrate`` (attributes tsdf and weight: depth only; the mesh's
colours are the class colours of the voted labels, so Open3D averages no colour). Open3D has no label-histogram
integration, so the labels are voted separately on the same grid: every valid pixel's back-projected map point votes
for its label in the voxel nearest to it (keys: integer voxel coordinates), and counts are kept as a sparse table.
``extract`` runs Open3D's marching cubes (output in a canonical order, ``canonical_mesh``); each vertex takes the
majority label of its voxel (or of the nearest voted voxel among its 26 neighbours; 255 if none), with the
majority's share of the votes as confidence.

Speed (``TSDFOptions``): ``max_size`` integrates big frames subsampled by an integer step, the keyframe rule leaves
out frames whose camera barely moved, ``threads`` bounds Open3D's threads; buffers, tensors and pixel rays are made
once per image size (``benchmarks/bench_map_speed.py`` measures it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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
    # initial hash map capacity in blocks of block_resolution^3 voxels (it grows when needed): a 6 x 5 m room at 4 cm
    # takes ~600; Open3D allocates the capacity up front (20000 blocks of tsdf + weight: 80 MB, 0.14 s)
    block_count: int = 2000
    weight_threshold: float = 1.0  # of marching cubes: voxels seen fewer times are empty
    # integrate at most (H, W): a bigger frame is subsampled by the smallest integer step that fits (every s-th pixel
    # and row, the camera matrix scaled to match: the rays of those pixels exactly); None: every pixel
    max_size: tuple[int, int] | None = None
    # keyframe rule: a frame whose camera moved less than keyframe_translation (m) and turned less than
    # keyframe_rotation_deg since the last integrated frame is left out; both 0 (the default): every frame
    keyframe_translation: float = 0.0
    keyframe_rotation_deg: float = 0.0
    threads: int = 0  # Open3D's CPU threads (set process-wide when the map is made); 0: Open3D's default (all)

    def check(self) -> "TSDFOptions":
        if not (0.005 <= self.voxel_size <= 1.0):
            raise ValueError(f"voxel size must be within 0.005..1 m, got {self.voxel_size}")
        if not (0.0 <= self.depth_min < self.depth_max):
            raise ValueError(f"depth range must satisfy 0 <= min < max, got {self.depth_min}..{self.depth_max}")
        if self.trunc_voxels < 1.0:
            raise ValueError(f"truncation must be at least one voxel, got {self.trunc_voxels}")
        if self.block_count < 1:
            raise ValueError(f"block count must be >= 1, got {self.block_count}")
        if self.max_size is not None and (len(self.max_size) != 2 or min(self.max_size) < 1):
            raise ValueError(f"max size must be (height, width) >= 1, got {self.max_size}")
        kt, kr = self.keyframe_translation, self.keyframe_rotation_deg
        if kt < 0 or kr < 0 or (kt > 0) != (kr > 0):
            raise ValueError(f"keyframe rule: give both a translation (m) and a rotation (degrees) > 0, or both 0 "
                             f"(every frame); got {kt} m, {kr} degrees")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: Open3D's default), got {self.threads}")
        return self


@dataclass
class MapResult:
    vertices: np.ndarray  # (V, 3) float32, map frame
    triangles: np.ndarray  # (F, 3) int32
    labels: np.ndarray  # (V,) uint8, 255 = no vote
    confidence: np.ndarray  # (V,) float32, share of the majority label's votes
    colors: np.ndarray  # (V, 3) uint8, class colour
    frames: int  # frames given
    integrated_frames: int = 0  # of which went into the map (not empty, not left out by the keyframe rule)
    skipped_frames: int = 0  # left out by the keyframe rule


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
    """Integrate (depth, labels, K, T_map_cam) frames; ``extract()`` the labelled mesh.

    Per frame, nothing of the image size is allocated again once the first frame of that size is in: the depth
    buffer that Open3D reads (shared with numpy, ``core.Tensor.from_numpy``), its ``Image``, the intrinsic tensor and
    the pixel rays of the label votes are kept for the (size, K) they were made for. The votes of a frame are counted
    per (voxel, label) at once (a sort of the frame's keys) and merged into the map's table now and then."""

    def __init__(self, options: TSDFOptions = TSDFOptions()):
        self.o = options.check()
        o3d = import_open3d()
        self._o3d = o3d
        self._o3c = o3d.core
        c = o3d.core
        if self.o.threads > 0:
            o3d.utility.set_max_threads(int(self.o.threads))  # process-wide (TBB)
        self.vbg = o3d.t.geometry.VoxelBlockGrid(
            attr_names=("tsdf", "weight"), attr_dtypes=(c.float32, c.float32), attr_channels=((1), (1)),
            voxel_size=float(self.o.voxel_size), block_resolution=int(self.o.block_resolution),
            block_count=int(self.o.block_count), device=c.Device("CPU:0"))
        self._keys = np.zeros(0, np.int64)  # (voxel key << 8) | label, sorted, unique
        self._counts = np.zeros(0, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # per frame: unique keys, their counts
        self._pending_n = 0
        self._buf_shape: tuple[int, int] | None = None
        self._buf = np.zeros((0, 0), np.float32)
        self._img = None
        self._k_key: bytes | None = None
        self._intr = None
        self._rx = self._ry = np.zeros(0)
        self._key_pose: np.ndarray | None = None
        self.frames = 0  # frames given
        self.empty_frames = 0  # frames without a valid depth pixel
        self.skipped_frames = 0  # frames left out by the keyframe rule
        self.integrated_frames = 0

    def stride(self, shape: tuple[int, ...]) -> int:
        """The integer subsampling step of an image of ``shape`` under ``max_size`` (1: full size)."""
        if self.o.max_size is None:
            return 1
        h, w = int(shape[0]), int(shape[1])
        return max(1, math.ceil(max(h / self.o.max_size[0], w / self.o.max_size[1])))

    def is_keyframe(self, T_map_cam: np.ndarray) -> bool:
        """Whether a frame at this pose is integrated under the keyframe rule: the first, and any whose camera moved
        at least ``keyframe_translation`` m or turned at least ``keyframe_rotation_deg`` since the last frame that
        was integrated (always true with the rule off)."""
        if self.o.keyframe_translation <= 0 or self._key_pose is None:
            return True
        T = np.asarray(T_map_cam, np.float64)
        ref = self._key_pose
        moved = float(np.linalg.norm(T[:3, 3] - ref[:3, 3]))
        cos = (float(np.sum(ref[:3, :3] * T[:3, :3])) - 1.0) / 2.0  # trace(ref_R^T R) = 1 + 2 cos(angle)
        turned = math.degrees(math.acos(min(1.0, max(-1.0, cos))))
        return moved >= self.o.keyframe_translation or turned >= self.o.keyframe_rotation_deg

    def _buffers(self, shape: tuple[int, int], K: np.ndarray) -> None:
        o3d, c = self._o3d, self._o3c
        if self._buf_shape != shape:
            self._buf = np.zeros(shape, np.float32)
            self._img = o3d.t.geometry.Image(c.Tensor.from_numpy(self._buf))  # shares self._buf's memory
            self._buf_shape = shape
            self._k_key = None
        k_key = K.tobytes()
        if self._k_key != k_key:
            h, w = shape
            self._intr = c.Tensor(K, c.float64)
            self._rx = np.tile((np.arange(w) - K[0, 2]) / K[0, 0], h)  # x / z of each pixel (flat, row-major)
            self._ry = np.repeat((np.arange(h) - K[1, 2]) / K[1, 1], w)
            self._k_key = k_key

    def integrate(self, depth: np.ndarray, labels: np.ndarray, K: np.ndarray, T_map_cam: np.ndarray) -> bool:
        """One frame: ``depth`` (H, W) metres along z, ``labels`` (H, W) class ids (255 = none), ``K`` its 3x3
        camera matrix, ``T_map_cam`` the camera's pose in the map. ValueError on inconsistent input. Returns whether
        the frame went into the map (not: left out by the keyframe rule, or no valid depth)."""
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
        self.frames += 1
        if not self.is_keyframe(T):
            self.skipped_frames += 1
            return False
        s = self.stride(depth.shape)
        if s > 1:  # every s-th pixel: exactly the rays of the full image at those pixels
            depth, labels = depth[::s, ::s], labels[::s, ::s]
            K = K.copy()
            K[:2] /= s
        self._buffers(depth.shape, K)
        d = self._buf
        np.copyto(d, depth, casting="unsafe")
        with np.errstate(invalid="ignore"):
            valid = (d > self.o.depth_min) & (d <= self.o.depth_max)  # NaN and inf: False
        np.copyto(d, 0.0, where=~valid)
        if not valid.any():  # nothing measured (Open3D refuses a frame that touches no block)
            self.empty_frames += 1
            return False
        c = self._o3c
        extr = c.Tensor(np.linalg.inv(T), c.float64)  # Open3D's extrinsic: map -> camera
        trunc, dmax = float(self.o.trunc_voxels), float(self.o.depth_max)
        blocks = self.vbg.compute_unique_block_coordinates(self._img, self._intr, extr, 1.0, dmax, trunc)
        self.vbg.integrate(blocks, self._img, self._intr, extr, 1.0, dmax, trunc)
        self._vote(d, valid, labels, T)
        self._key_pose = T
        self.integrated_frames += 1
        return True

    def _vote(self, d: np.ndarray, valid: np.ndarray, labels: np.ndarray, T: np.ndarray) -> None:
        """Each valid, labelled pixel's map point votes for its label in its nearest voxel (no BLAS: a threaded
        matrix product is many times slower than these element-wise sums on a busy 2-core machine)."""
        lab = labels.reshape(-1)
        keep = valid.reshape(-1) & (lab < UNLABELLED)
        if lab.dtype.kind == "i":
            keep &= lab >= 0
        idx = np.flatnonzero(keep)
        if len(idx) == 0:
            return
        z = d.reshape(-1)[idx].astype(np.float64)
        x, y = self._rx[idx] * z, self._ry[idx] * z
        key = np.zeros(len(idx), np.int64)
        for r in range(3):  # map coordinates -> voxel index (+ offset) -> 16 bits each
            q = np.round((x * T[r, 0] + y * T[r, 1] + z * T[r, 2] + T[r, 3]) / self.o.voxel_size).astype(np.int64)
            q += _OFF
            if q.min() < 0 or q.max() > _MASK:
                raise ValueError(f"map points beyond +-{_OFF * self.o.voxel_size:.0f} m from the origin")
            key |= q << ((2 - r) * _BITS)
        key = np.sort((key << 8) | lab[idx].astype(np.int64))
        start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        self._pending.append((key[start], np.diff(np.r_[start, len(key)])))
        self._pending_n += len(start)
        if self._pending_n > 1_000_000:
            self._compress()

    def _compress(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self._keys, *(k for k, _ in self._pending)])
        counts = np.concatenate([self._counts, *(n for _, n in self._pending)])
        order = np.argsort(keys, kind="stable")
        keys, counts = keys[order], counts[order]
        start = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        self._keys, self._counts = keys[start], np.add.reduceat(counts, start).astype(np.int64)
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

    def _marching_cubes(self):
        """Open3D's mesh, or None when no voxel is over the weight threshold: Open3D 0.20's marching cubes of a grid
        without a colour attribute fails on an empty surface ("SetVertexColors ... shape {0}") instead of giving an
        empty mesh (as it does with colour)."""
        thr = float(self.o.weight_threshold)
        active = self.vbg.hashmap().active_buf_indices().numpy()
        if len(active) == 0 or self.vbg.attribute("weight").numpy()[active].max() <= thr:
            return None
        try:
            return self.vbg.extract_triangle_mesh(thr)
        except RuntimeError as e:
            if "SetVertexColors" in str(e):  # the same failure: voxels over the threshold, but no surface among them
                return None
            raise

    def extract(self) -> MapResult:
        """Marching cubes of the TSDF; vertices labelled by the votes (module docstring)."""
        if self.frames == 0:
            raise ValueError("no frame was integrated")
        mesh = self._marching_cubes() if self.integrated_frames else None
        if mesh is not None and "positions" in mesh.vertex and mesh.vertex.positions.shape[0] > 0:
            verts = mesh.vertex.positions.numpy().astype(np.float32)
            tris = mesh.triangle.indices.numpy().astype(np.int32)
        else:
            verts, tris = np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32)
        verts, tris = canonical_mesh(verts, tris)
        labels, conf = self.label_points(verts)
        return MapResult(verts, tris, labels, conf, class_colors(labels), self.frames, self.integrated_frames,
                         self.skipped_frames)


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
