"""Pictures of a map by numpy projection (headless: no OpenGL, no Open3D window).

``sample_surface`` spreads points over the mesh triangles (about one per ``spacing``² of area, each with the class
colour of the triangle's first vertex) so that close views have no holes; ``topdown`` is an orthographic view from
above (the highest point per cell wins; the ceiling and the top ``ceiling_margin`` of the map are left out so the
room's contents show), shaded by height; ``perspective`` projects the points through a pinhole camera with a
z-buffer (nearest point per pixel, 3 x 3 splats). Images are (H, W, 3) uint8 RGB on white.
"""
from __future__ import annotations

import numpy as np

from mtlsi_core.tasks import NYUD_CLASSES

CEILING = NYUD_CLASSES.index("ceiling")
WHITE = np.uint8(255)


def sample_surface(vertices: np.ndarray, triangles: np.ndarray, labels: np.ndarray, colors: np.ndarray,
                   spacing: float = 0.01, max_points: int = 3_000_000, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(points, labels, colours) spread over the triangles (deterministic for a seed)."""
    if len(triangles) == 0:
        return vertices, labels, colors
    v = np.asarray(vertices, np.float64)
    a, b, c = v[triangles[:, 0]], v[triangles[:, 1]], v[triangles[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    n_target = min(max_points, int(area.sum() / spacing ** 2) + len(triangles))
    rng = np.random.default_rng(seed)
    counts = rng.poisson(area / area.sum() * n_target) if area.sum() > 0 else np.zeros(len(area), np.int64)
    tri = np.repeat(np.arange(len(triangles)), counts)
    r1, r2 = np.sqrt(rng.random(len(tri))), rng.random(len(tri))
    pts = (1 - r1)[:, None] * a[tri] + (r1 * (1 - r2))[:, None] * b[tri] + (r1 * r2)[:, None] * c[tri]
    first = triangles[tri, 0]
    return (np.concatenate([v, pts]).astype(np.float32), np.concatenate([labels, labels[first]]),
            np.concatenate([colors, colors[first]]))


def topdown(points: np.ndarray, labels: np.ndarray, colors: np.ndarray, resolution: float = 0.02,
            ceiling_margin: float = 0.25, max_side: int = 1600,
            bounds: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Orthographic view from above (x to the right, y up), ``resolution`` metres per pixel, over ``bounds`` =
    (x min, y min, x max, y max) (default: the points'; give the same bounds to compare maps)."""
    p = np.asarray(points, np.float64)
    keep = np.asarray(labels) != CEILING
    if keep.any():
        keep &= p[:, 2] <= p[keep, 2].max() - ceiling_margin
    p, col = p[keep], np.asarray(colors)[keep]
    if len(p) == 0:
        return np.full((64, 64, 3), WHITE, np.uint8)
    if bounds is not None:
        lo, hi = np.array(bounds[:2], np.float64), np.array(bounds[2:], np.float64)
        inside = np.all((p[:, :2] >= lo) & (p[:, :2] <= hi), axis=1)
        p, col = p[inside], col[inside]
    else:
        lo, hi = p[:, :2].min(axis=0), p[:, :2].max(axis=0)
    res = max(resolution, float((hi - lo).max()) / max_side)
    w, h = (np.floor((hi - lo) / res).astype(int) + 1)
    u = np.floor((p[:, 0] - lo[0]) / res).astype(np.int64)
    v = (h - 1) - np.floor((p[:, 1] - lo[1]) / res).astype(np.int64)
    pix = v * w + u
    order = np.lexsort((p[:, 2], pix))  # per pixel, the highest point last
    last = np.ones(len(order), bool)
    last[:-1] = pix[order][1:] != pix[order][:-1]
    sel = order[last]
    z = p[sel, 2]
    shade = 0.55 + 0.45 * (z - z.min()) / max(float(z.max() - z.min()), 1e-6)
    img = np.full((h * w, 3), WHITE, np.uint8)
    img[pix[sel]] = np.clip(col[sel].astype(np.float64) * shade[:, None], 0, 255).astype(np.uint8)
    return img.reshape(h, w, 3)


def perspective(points: np.ndarray, colors: np.ndarray, K: np.ndarray, T_map_cam: np.ndarray,
                size: tuple[int, int], splat: int = 3) -> np.ndarray:
    """The points seen from a pinhole camera (``T_map_cam`` optical frame, ``K``) at ``size`` = (H, W)."""
    h, w = size
    T = np.linalg.inv(np.asarray(T_map_cam, np.float64))
    pc = np.asarray(points, np.float64) @ T[:3, :3].T + T[:3, 3]
    front = pc[:, 2] > 0.05
    pc, col = pc[front], np.asarray(colors)[front]
    u = np.floor(K[0, 0] * pc[:, 0] / pc[:, 2] + K[0, 2] + 0.5).astype(np.int64)
    v = np.floor(K[1, 1] * pc[:, 1] / pc[:, 2] + K[1, 2] + 0.5).astype(np.int64)
    us, vs, zs, cs = [], [], [], []
    for dy in range(splat):
        for dx in range(splat):
            us.append(u + dx)
            vs.append(v + dy)
            zs.append(pc[:, 2])
            cs.append(col)
    u, v, z, col = np.concatenate(us), np.concatenate(vs), np.concatenate(zs), np.concatenate(cs)
    ok = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    u, v, z, col = u[ok], v[ok], z[ok], col[ok]
    pix = v * w + u
    order = np.lexsort((-z, pix))  # per pixel, the nearest point last
    last = np.ones(len(order), bool)
    last[:-1] = pix[order][1:] != pix[order][:-1]
    sel = order[last]
    img = np.full((h * w, 3), WHITE, np.uint8)
    img[pix[sel]] = col[sel]
    return img.reshape(h, w, 3)


def side_by_side(images: list[np.ndarray], titles: list[str], height: int = 360) -> np.ndarray:
    """Images scaled to one height, with titles, in a row (for the map pictures of a report)."""
    import cv2

    tiles = []
    for img, title in zip(images, titles):
        s = height / img.shape[0]
        t = cv2.resize(img, (max(1, int(round(img.shape[1] * s))), height), interpolation=cv2.INTER_NEAREST)
        text_w = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)[0][0] + 12
        if t.shape[1] < text_w:  # room for the title
            t = np.pad(t, ((0, 0), (0, text_w - t.shape[1]), (0, 0)), constant_values=255)
        bar = np.full((28, t.shape[1], 3), WHITE, np.uint8)
        cv2.putText(bar, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([bar, t]))
        tiles.append(np.full((height + 28, 8, 3), WHITE, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


def map_views(maps: list, K: np.ndarray, T_map_cam: np.ndarray, size: tuple[int, int]) -> list[tuple[np.ndarray, ...]]:
    """(top-down, first-pose view) of each map (``tsdf.MapResult``), the top-down views over common bounds."""
    samples = [sample_surface(m.vertices, m.triangles, m.labels, m.colors) for m in maps]
    filled = [s[0] for s in samples if len(s[0])]
    bounds = None
    if filled:
        allp = np.concatenate(filled)
        lo, hi = allp[:, :2].min(axis=0), allp[:, :2].max(axis=0)
        bounds = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
    return [(topdown(p, lab, col, bounds=bounds), perspective(p, col, K, T_map_cam, size)) for p, lab, col in samples]


def stack_rows(rows: list[np.ndarray]) -> np.ndarray:
    """Images stacked vertically, padded white to the widest."""
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])


__all__ = ["map_views", "perspective", "sample_surface", "side_by_side", "stack_rows", "topdown"]
