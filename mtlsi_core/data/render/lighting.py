"""Shading of the nyud profile: coloured lights with cast shadows, ambient occlusion, highlights, emission.

Lights are points (ceiling fixtures, lamps, the opening of a window) that send light into a half space around an
axis with a cosine lobe. Each light that casts shadows gets a shadow map: the room is ray-cast from the light's
position with the same caster as the camera (``raycast.zbuffer``) through a wide pinhole (up to 150 degrees), and a
surface point is lit where it is not farther from the light than the map's depth in its direction (normal-offset
and slope bias against self-shadowing, percentage-closer filtering over 2 x 2 bilinear taps for soft edges).
Ambient occlusion is screen-space, from the exact depth and normals of the view: neighbours at three pixel radii in
eight directions that rise above a point's tangent plane occlude it, weighted by their distance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from mtlsi_core.data.raycast import surface_slices, zbuffer
from mtlsi_core.data.scene import Light
from mtlsi_core.data.render.textures import TexMaterial, albedo

SHADOW_MAP = 512  # texels per side of a light's shadow map
SHADOW_FOV_DEG = 150.0


@dataclass
class RoomLight(Light):
    """A point light of the nyud profile; ``direction`` stays None (point lights only)."""

    colour: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))  # linear RGB, mean 1
    axis: np.ndarray | None = None  # unit vector the light faces; None: all directions (no shadow map)
    lobe: float = 1.0  # exponent of the cosine lobe around ``axis``
    shadows: bool = True
    reach: float = 2.5  # metres at which the intensity has fallen to half (1 / (1 + (d / reach)^2))


def light_rotation(axis: np.ndarray) -> np.ndarray:
    """World-from-light rotation whose third column is ``axis``."""
    z = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


@dataclass
class ShadowMap:
    position: np.ndarray
    R: np.ndarray  # world-from-light rotation
    f: float  # focal length (texels)
    c: float  # principal point (both axes)
    depth: np.ndarray  # (S, S) float32 light-frame z of the nearest surface

    @classmethod
    def render(cls, light: RoomLight, prims: list, room: np.ndarray, size: int = SHADOW_MAP,
               fov_deg: float = SHADOW_FOV_DEG) -> "ShadowMap":
        R = light_rotation(light.axis)
        f = (size / 2) / math.tan(math.radians(fov_deg) / 2)
        c = (size - 1) / 2
        K = np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])
        t = ((np.arange(size) - c) / f).astype(np.float32)
        xu, yv = t[None, :], t[:, None]
        D = tuple((R[i, 0] * xu + R[i, 1] * yv + R[i, 2]).astype(np.float32) for i in range(3))
        depth, _, _, _ = zbuffer(prims, room, np.asarray(light.position, np.float64), R, K, (size, size), D)
        return cls(np.asarray(light.position, np.float64), R, f, c, depth)

    def visibility(self, P: list[np.ndarray], n: list[np.ndarray]) -> np.ndarray:
        """Share of light (0..1) reaching world points ``P`` (planes) with world normals ``n``: one bilinear
        percentage-closer tap (the supersampling averages neighbouring taps into a soft edge)."""
        size = self.depth.shape[0]
        Rl = [[float(v) for v in row] for row in self.R]
        rel = [P[i] - float(self.position[i]) for i in range(3)]
        qz0 = rel[0] * Rl[0][2] + rel[1] * Rl[1][2] + rel[2] * Rl[2][2]
        texel = np.maximum(qz0, 0.05) * (1.5 / self.f)  # world size of ~1.5 texels at that distance
        rel = [rel[i] + n[i] * texel for i in range(3)]  # normal offset against self-shadowing
        q = [rel[0] * Rl[0][j] + rel[1] * Rl[1][j] + rel[2] * Rl[2][j] for j in range(3)]
        qz = np.maximum(q[2], 1e-3)
        inv = np.float32(self.f) / qz
        u = q[0] * inv + np.float32(self.c)
        v = q[1] * inv + np.float32(self.c)
        inside = (q[2] > 0.02) & (u > 0) & (v > 0) & (u < size - 1) & (v < size - 1)
        z = qz - (0.01 + 0.01 * qz)  # constant and distance bias
        uu = np.clip(u, 0, size - 1.001)
        vv = np.clip(v, 0, size - 1.001)
        iu, iv = uu.astype(np.int32), vv.astype(np.int32)
        fu, fv = uu - iu, vv - iv
        flat = self.depth.ravel()
        k = iv * size + iu
        top = (z <= flat[k]) * (1 - fu) + (z <= flat[k + 1]) * fu
        bottom = (z <= flat[k + size]) * (1 - fu) + (z <= flat[k + size + 1]) * fu
        lit = top * (1 - fv) + bottom * fv
        return np.where(inside, lit, np.float32(1.0)).astype(np.float32, copy=False)


def ambient_occlusion(depth: np.ndarray, normals: np.ndarray, xu: np.ndarray, yv: np.ndarray,
                      strength: float = 1.0) -> np.ndarray:
    """Screen-space ambient occlusion (H, W) in [0, 1] (1: open) from z-depth and camera-frame normals."""
    h, w = depth.shape
    P = np.stack([depth * xu, depth * yv, depth], axis=-1).astype(np.float32)
    n = normals.astype(np.float32)
    scale = max(w / 320.0, 0.25)
    occ = np.zeros((h, w), np.float32)
    count = 0
    pad = int(math.ceil(24 * scale)) + 1
    Pp = cv2.copyMakeBorder(P, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    for radius in (3.0, 9.0, 24.0):
        r = radius * scale
        for k in range(8):
            a = (k + 0.5 * (radius > 5)) * math.pi / 4
            dy, dx = int(round(r * math.sin(a))), int(round(r * math.cos(a)))
            Q = Pp[pad + dy:pad + dy + h, pad + dx:pad + dx + w]
            v = Q - P
            dist = np.sqrt(np.einsum("hwc,hwc->hw", v, v)) + 1e-6
            cos = np.einsum("hwc,hwc->hw", v, n) / dist
            occ += np.maximum(cos - 0.15, 0.0) / (1.0 + (dist / 0.35) ** 2)
            count += 1
    return np.clip(1.0 - strength * 2.0 * occ / count, 0.0, 1.0)


SH_BAND = np.array([np.pi] + [2 * np.pi / 3] * 3 + [np.pi / 4] * 5, np.float32)  # A_l of Lambert's cosine lobe


def sh_basis(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> list[np.ndarray]:
    """The 9 real spherical harmonics of bands 0-2 at unit directions (x, y, z)."""
    return [np.full_like(x, 0.282095), 0.488603 * y, 0.488603 * z, 0.488603 * x, 1.092548 * x * y,
            1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z, 0.546274 * (x * x - y * y)]


def sh_environment(panorama: np.ndarray, yaw: float = 0.0) -> np.ndarray:
    """(9, 3) radiance coefficients of an equirectangular panorama (H, W, 3 linear RGB; row 0 = straight up, the
    centre column = world +x after turning it by ``yaw`` about z): Ramamoorthi and Hanrahan's irradiance
    environment map (2001), projected with each pixel's solid angle."""
    h, w = panorama.shape[:2]
    theta = (np.arange(h) + 0.5) * (np.pi / h)
    phi = (np.arange(w) + 0.5) * (2 * np.pi / w) - np.pi + yaw
    st = np.sin(theta)[:, None]
    x, y = st * np.cos(phi)[None, :], st * np.sin(phi)[None, :]
    z = np.broadcast_to(np.cos(theta)[:, None], x.shape)
    d_omega = (st * (np.pi / h) * (2 * np.pi / w)).astype(np.float64)
    rad = panorama.reshape(h, w, 3).astype(np.float64)
    return np.stack([np.einsum("hw,hwc->c", b * d_omega, rad) for b in sh_basis(x, y, z)]).astype(np.float32)


def sh_irradiance(coeffs: np.ndarray, n: list[np.ndarray]) -> np.ndarray:
    """(H, W, 3) irradiance / pi (the light a white Lambertian surface reflects) at world normals ``n`` (planes)."""
    out = np.zeros(n[0].shape + (3,), np.float32)
    for k, b in enumerate(sh_basis(n[0], n[1], n[2])):
        out += b[..., None] * (coeffs[k] * (SH_BAND[k] / np.pi))
    return np.maximum(out, 0.0)


def surface_albedo(scene, depth, prim, face, D, nprim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel albedo (H, W, 3), emission (H, W, 3), gloss and shininess (H, W) of the visible surfaces."""
    h, w = depth.shape
    order, slices = surface_slices(scene, depth, prim, face, D, nprim)
    alb_s = np.empty((prim.size, 3), np.float32)
    emit = np.zeros((nprim, 3), np.float32)
    gloss = np.zeros(nprim, np.float32)
    shiny = np.ones(nprim, np.float32)
    for k, sl, frame, mat, u, v in slices:
        extent = None
        if k >= 6:
            half = frame.half_extent_local()
            extent = (float(half[0]), float(half[2]))
        alb_s[sl] = albedo(mat, u, v, extent)
        if isinstance(mat, TexMaterial):
            emit[k] = mat.emissive * np.asarray(mat.emit_colour, np.float32)
            gloss[k], shiny[k] = mat.gloss, mat.shininess
        else:
            emit[k] = mat.emissive
    alb = np.empty_like(alb_s)
    alb[order] = alb_s
    return alb.reshape(h, w, 3), emit[prim], gloss[prim], shiny[prim]


def shade(scene, c, ao: np.ndarray, shadow_size: int = SHADOW_MAP, shadows: bool = True,
          shadow_maps: dict | None = None) -> np.ndarray:
    """Linear radiance (H, W, 3) float32 of the cast ``c`` (``synth.Cast``) of ``scene`` (a ``rooms.RoomScene``);
    ``shadows=False`` skips every shadow map (for measuring what they buy). ``shadow_maps``: a cache of this room's
    shadow maps (they do not depend on the view), filled on first use and reused by later views of the same room
    (its lights and parts unchanged: a sequence's frames); None renders them for this view only."""
    o = scene.cam_pos
    R = [[float(v) for v in row] for row in scene.R_wc]
    nprim = 6 + len(scene.parts)
    alb, emit, gloss, shiny = surface_albedo(scene, c.depth, c.prim, c.face, c.D, nprim)
    P = [float(o[i]) + c.depth * c.D[i] for i in range(3)]
    nw = [R[i][0] * c.n[0] + R[i][1] * c.n[1] + R[i][2] * c.n[2] for i in range(3)]
    # ambient: indirect light, occluded in creases: from an environment's irradiance where the room has one (an HDR
    # panorama, mtlsi_core.data.assets), else bounced off floor and walls: the same from every side
    environment = getattr(scene, "environment", None)
    if environment is not None:
        amb = sh_irradiance(environment, nw) * ao[..., None]
    else:
        amb = (np.float32(scene.ambient) * ao)[..., None] * np.asarray(scene.ambient_colour, np.float32)
    diffuse = amb.astype(np.float32)
    spec = np.zeros_like(diffuse)
    glossy = np.flatnonzero(gloss > 0)  # highlights only where a material has gloss
    if glossy.size:
        inv = 1.0 / np.sqrt(c.D[0] ** 2 + c.D[1] ** 2 + c.D[2] ** 2)
        view = [(-c.D[i] * inv).ravel()[glossy] for i in range(3)]  # towards the camera
        ng = [nw[i].ravel()[glossy] for i in range(3)]
        g_gloss, g_shiny = gloss.ravel()[glossy], shiny.ravel()[glossy]
    prims = [p.prim for p in scene.parts]
    for k, lt in enumerate(scene.lights):
        v = [np.float32(lt.position[i]) - P[i] for i in range(3)]
        d2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2]
        inv_d = 1.0 / np.sqrt(d2)
        l = [v[i] * inv_d for i in range(3)]
        ndotl = np.maximum(nw[0] * l[0] + nw[1] * l[1] + nw[2] * l[2], 0.0)
        power = np.float32(lt.intensity) / (1.0 + d2 * np.float32(1.0 / lt.reach ** 2))
        if lt.axis is not None:
            a = [float(x) for x in lt.axis]
            cos_axis = np.maximum(-(l[0] * a[0] + l[1] * a[1] + l[2] * a[2]), 0.0)
            power *= cos_axis if lt.lobe == 1.0 else cos_axis ** np.float32(lt.lobe)
            if lt.shadows and shadows:
                sm = None if shadow_maps is None else shadow_maps.get((k, shadow_size))
                if sm is None:
                    sm = ShadowMap.render(lt, prims, scene.room, shadow_size)
                    if shadow_maps is not None:
                        shadow_maps[(k, shadow_size)] = sm
                power *= sm.visibility(P, nw)
        diffuse += (ndotl * power)[..., None] * lt.colour
        if glossy.size:
            hv = [l[i].ravel()[glossy] + view[i] for i in range(3)]
            hn = np.sqrt(hv[0] ** 2 + hv[1] ** 2 + hv[2] ** 2) + 1e-6
            ndoth = np.maximum((ng[0] * hv[0] + ng[1] * hv[1] + ng[2] * hv[2]) / hn, 0.0)
            lit = ndotl.ravel()[glossy] > 0
            sp = g_gloss * ndoth ** g_shiny * power.ravel()[glossy] * lit
            spec.reshape(-1, 3)[glossy] += sp[:, None] * lt.colour
    return alb * diffuse + spec + emit
