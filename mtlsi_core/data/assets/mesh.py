"""Triangle meshes in the generator's ray caster: a ``raycast.Primitive`` whose surface is a mesh, cast with Open3D's
``RaycastingScene`` (Embree) so that depth, normals, labels and boundaries stay exact.

The mesh is held in the primitive's local frame (origin at the centre of its bounding box, x = width, y = depth with
+y towards the wall, z up; yaw about world z as every primitive). Rays reach it through the same interface as the
analytic shapes: ``intersect`` returns the hit parameter (camera z-depth, since directions have camera-frame z = 1)
and a face code, here the code of the triangle normal's dominant local axis, which is what ``raycast.surface_slices``
needs to texture it (a tri-planar projection). ``curved_normals`` gives the exact triangle normal at each hit point
(the closest triangle of an on-surface point is the one it lies on).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mtlsi_core.data.raycast import INF, Planes, Primitive
from mtlsi_core.mapping import import_open3d


@dataclass
class MeshShape:
    """A mesh in local coordinates (centred bounding box), shared by every primitive that places it."""

    vertices: np.ndarray  # (V, 3) float32
    triangles: np.ndarray  # (T, 3) uint32
    _scene: object = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, np.float32)
        self.triangles = np.ascontiguousarray(self.triangles, np.uint32)
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3 or not len(self.vertices):
            raise ValueError(f"mesh vertices must be (V, 3) with V > 0, got {self.vertices.shape}")
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3 or not len(self.triangles):
            raise ValueError(f"mesh triangles must be (T, 3) with T > 0, got {self.triangles.shape}")
        if not np.all(np.isfinite(self.vertices)):
            raise ValueError("mesh vertices are not all finite")
        if int(self.triangles.max()) >= len(self.vertices):
            raise ValueError("mesh triangles index a vertex that does not exist")
        # triangles without area have no normal: a closest-point query could still return one (at an edge it ties)
        v = self.vertices[self.triangles].astype(np.float64)
        area2 = np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1)
        keep = area2 > 1e-12
        if not keep.any():
            raise ValueError("mesh triangles all have zero area")
        self.triangles = np.ascontiguousarray(self.triangles[keep])

    @property
    def half(self) -> np.ndarray:
        return np.abs(self.vertices).max(axis=0).astype(np.float64)

    def scene(self):
        """The Open3D ray-casting scene of this mesh (built on first use, per process)."""
        if self._scene is None:
            o3d = import_open3d()
            s = o3d.t.geometry.RaycastingScene()
            s.add_triangles(o3d.core.Tensor(self.vertices), o3d.core.Tensor(self.triangles))
            self._scene = s
        return self._scene

    def __getstate__(self) -> dict:  # the Open3D scene does not pickle: worker processes build their own
        return {"vertices": self.vertices, "triangles": self.triangles}

    def __setstate__(self, state: dict) -> None:
        self.vertices, self.triangles, self._scene = state["vertices"], state["triangles"], None


@dataclass
class MeshPrimitive(Primitive):
    """A placed ``MeshShape``: ``center`` is the world position of its bounding box's centre."""

    shape: MeshShape | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.shape is None:
            raise ValueError("MeshPrimitive needs a shape")
        self.curved = True  # normals per triangle, found from the hit points

    def half_extent_local(self) -> np.ndarray:
        return self.shape.half

    def _cast(self, o: np.ndarray, d: Planes) -> dict:
        (ox, oy, oz), (dx, dy, dz) = self._local_ray(o, d)
        n = int(np.size(dx))
        rays = np.empty((n, 6), np.float32)
        rays[:, 0], rays[:, 1], rays[:, 2] = ox, oy, oz
        rays[:, 3], rays[:, 4], rays[:, 5] = np.ravel(dx), np.ravel(dy), np.ravel(dz)
        o3d = import_open3d()
        return self.shape.scene().cast_rays(o3d.core.Tensor(rays))

    def intersect(self, o: np.ndarray, d: Planes) -> tuple[np.ndarray, np.ndarray]:
        shape = np.shape(d[0])
        if np.size(d[0]) == 0:
            return np.full(shape, INF, np.float32), np.zeros(shape, np.int8)
        hit = self._cast(o, d)
        t = hit["t_hit"].numpy().reshape(shape)
        t = np.where(np.isfinite(t) & (t > 1e-4), t, INF).astype(np.float32)
        nrm = hit["primitive_normals"].numpy().reshape(shape + (3,))
        axis = np.abs(nrm).argmax(axis=-1)
        neg = np.take_along_axis(nrm, axis[..., None], -1)[..., 0] < 0
        return t, (2 * axis + neg).astype(np.int8)

    def curved_normals(self, px: np.ndarray, py: np.ndarray, pz: np.ndarray, face: np.ndarray) -> Planes:
        o3d = import_open3d()
        q = np.stack(self.to_local(px, py, pz), axis=-1).astype(np.float32).reshape(-1, 3)
        nl = self.shape.scene().compute_closest_points(o3d.core.Tensor(q))["primitive_normals"].numpy()
        nx, ny, nz = nl[:, 0], nl[:, 1], nl[:, 2]
        c, s = self._c, self._s  # local -> world: rotate by +yaw about z
        return ((c * nx - s * ny).reshape(px.shape), (s * nx + c * ny).reshape(px.shape), nz.reshape(px.shape))

    def surface_distance(self, P: np.ndarray) -> np.ndarray:
        """Unsigned distance of world points (n, 3) to the mesh (for tests and checks)."""
        o3d = import_open3d()
        q = np.stack(self.to_local(P[:, 0], P[:, 1], P[:, 2]), axis=-1).astype(np.float32)
        return self.shape.scene().compute_distance(o3d.core.Tensor(q)).numpy()
