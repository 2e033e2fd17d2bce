"""Surface textures with the statistics of real ones, for the ``nyud`` profile.

Tileable 256 x 256 texture variants per pattern, each made once per process (on first use) from a fixed seed: grey
patterns (1/f plaster, wood grain, planks, fabric weave, carpet, tiles, stripes, marble, leather, brushed metal)
are coloured per material between two albedos; colour patterns (posters / pictures with structure, book spines,
paper, screens, whiteboards, the view out of a window) are used as they are, tinted. Natural images have a power
spectrum falling as about 1/f^2 (amplitude 1/f); the noise here follows that law instead of the basic profile's
band-limited noise. A material maps the pattern either tiled in metres or stretched over the face it is on
(pictures, book spines, screens, windows).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mtlsi_core.data.materials import ANY, PALETTE, Material

TEX = 256  # texels per side (a power of two: tiling is a bit mask)
VARIANTS = 6

GREY = ("plaster", "noise", "wood", "planks", "fabric", "carpet", "tiles", "stripes", "marble", "leather", "metal",
        "plain", "slats", "folds")
COLOUR = ("poster", "books", "paper", "screen", "whiteboard", "sky")
# metres covered by one texture tile (tiled patterns)
TILE_METRES = {"plaster": (1.5, 3.0), "noise": (0.6, 2.0), "wood": (0.5, 1.2), "planks": (1.2, 2.0),
               "fabric": (0.25, 0.6), "carpet": (0.6, 1.2), "tiles": (0.6, 1.6), "stripes": (0.4, 1.5),
               "marble": (0.8, 1.6), "leather": (0.4, 0.8), "metal": (0.5, 1.0), "plain": (2.0, 4.0),
               "slats": (0.6, 1.2), "folds": (0.8, 1.6)}
GLOSSY = ("wood", "planks", "tiles", "marble", "leather", "metal", "screen", "whiteboard", "plain")
# the basic profile's pattern names -> the nyud patterns that replace them
ALIASES = {"plain": ("plaster", "plain"), "noise": ("noise", "plaster", "leather"), "stripes": ("stripes",),
           "wood": ("wood", "planks"), "tiles": ("tiles",), "fabric": ("fabric", "carpet")}


@dataclass
class TexMaterial(Material):
    """A material of the nyud profile: a bank texture, its mapping, gloss and emission colour."""

    texture: int = 0  # variant index in the bank of ``pattern``
    stretch: bool = False  # map the texture once over the face (else tile it every ``1 / freq`` metres)
    gloss: float = 0.0  # Blinn-Phong specular weight (0: matte)
    shininess: float = 20.0
    emit_colour: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass
class PhotoMaterial(TexMaterial):
    """A material whose texture is a photograph (``mtlsi_core.data.assets``): ``image`` (TEX, TEX, 3) float32 linear
    albedo, tiled every ``1 / freq`` metres or stretched over the face, tinted by ``c1`` (ones: as photographed)."""

    image: np.ndarray | None = None


def _spectral_noise(rng: np.random.Generator, n: int, slope: float, lo: float = 0.0, hi: float = 0.5,
                    aniso: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Tileable noise with power spectrum ~ 1/f^slope between ``lo`` and ``hi`` cycles per texel, in [0, 1]."""
    f = np.fft.fftfreq(n)
    fy, fx = f[:, None] * aniso[1], f[None, :] * aniso[0]
    rad = np.sqrt(fx * fx + fy * fy)
    amp = np.maximum(rad, 1.0 / n) ** (-slope / 2)
    amp[(rad < lo) | (rad > hi)] = 0.0
    amp[0, 0] = 0.0
    tex = np.real(np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, n))) * amp))
    lo_v, hi_v = np.percentile(tex, [0.5, 99.5])
    return np.clip((tex - lo_v) / max(hi_v - lo_v, 1e-9), 0.0, 1.0)


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n) / n
    return np.meshgrid(t, t)  # u (columns), v (rows) in [0, 1)


def _grey(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    u, v = _grid(n)
    pink = _spectral_noise(rng, n, 2.0)
    if name == "plain":
        return 0.5 + 0.15 * (pink - 0.5)
    if name == "plaster":
        return 0.5 + 0.5 * (0.7 * pink + 0.3 * _spectral_noise(rng, n, 1.2, lo=0.05) - 0.5)
    if name == "noise":
        return 0.6 * pink + 0.4 * _spectral_noise(rng, n, 1.5, lo=0.02)
    if name == "leather":
        cells = _spectral_noise(rng, n, 0.5, lo=0.08, hi=0.2)
        return 0.5 + 0.5 * (0.5 * pink + 0.5 * cells - 0.5)
    if name in ("wood", "planks"):
        rings = int(rng.integers(6, 16))
        warp = _spectral_noise(rng, n, 3.0, aniso=(0.3, 3.0))
        grain = 0.5 + 0.5 * np.sin(2 * math.pi * (rings * u + 2.5 * warp))
        fibre = _spectral_noise(rng, n, 1.0, aniso=(0.1, 4.0))
        tex = 0.55 * grain ** 1.5 + 0.3 * fibre + 0.15 * pink
        if name == "planks":
            rows = int(rng.integers(4, 8))
            row = np.floor(v * rows)
            shade = rng.uniform(0.8, 1.2, rows)[row.astype(int)]
            seam = (v * rows - row) < 0.025
            ends = ((u + 0.37 * row) % 1.0) < 0.008
            tex = np.where(seam | ends, 0.05, tex * shade)
        return tex
    if name == "fabric":
        k = int(rng.integers(48, 96))
        weave = 0.5 + 0.25 * np.sin(2 * math.pi * k * u) * np.sign(np.sin(2 * math.pi * k * v)) + 0.25 * np.sin(
            2 * math.pi * k * v)
        return 0.45 * weave + 0.55 * pink
    if name == "carpet":
        return 0.5 * _spectral_noise(rng, n, 0.0, lo=0.2) + 0.5 * pink
    if name == "tiles":
        k = int(rng.choice([2, 4, 4, 8]))
        fu, fv = u * k, v * k
        if rng.random() < 0.4:
            fu = fu + 0.5 * (np.floor(fv) % 2)  # running bond
        cell = (np.floor(fu) % k) * k + np.floor(fv) % k
        shade = rng.uniform(0.85, 1.0, k * k)[cell.astype(int)]
        grout = np.minimum(np.minimum(fu % 1, 1 - fu % 1), np.minimum(fv % 1, 1 - fv % 1)) < 0.02 * k / 2
        return np.where(grout, 0.0, 0.75 * shade + 0.25 * pink)
    if name == "stripes":
        k = int(rng.integers(3, 14))
        return 0.7 * (0.5 + 0.5 * np.sign(np.sin(2 * math.pi * k * u))) + 0.3 * pink
    if name == "marble":
        turb = _spectral_noise(rng, n, 2.5)
        return 0.5 + 0.5 * np.sin(2 * math.pi * (2 * u + 3 * v + 4 * turb)) ** 3 * 0.6 + 0.2 * (pink - 0.5)
    if name == "slats":  # horizontal blind slats: bright faces, dark gaps
        k = int(rng.integers(16, 32))
        return 0.8 * (0.5 + 0.5 * np.sin(2 * math.pi * k * v)) ** 0.4 + 0.2 * pink
    if name == "folds":  # curtain folds: smooth vertical shading waves
        k = int(rng.integers(6, 14))
        warp = _spectral_noise(rng, n, 3.0, aniso=(1.0, 0.1))
        return 0.75 * (0.5 + 0.5 * np.sin(2 * math.pi * (k * u + warp))) + 0.25 * pink
    if name == "metal":
        return 0.5 + 0.4 * (_spectral_noise(rng, n, 1.0, aniso=(0.05, 5.0)) - 0.5) + 0.1 * (pink - 0.5)
    raise KeyError(name)


def _palette_colour(rng: np.random.Generator) -> np.ndarray:
    return PALETTE[int(rng.choice(ANY))] * rng.uniform(0.7, 1.15, 3)


def _colour(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    u, v = _grid(n)
    if name == "poster":  # a picture: a gradient, coloured blobs and shapes at several scales, 1/f detail
        img = _palette_colour(rng)[None, None] * (1 - v)[..., None] + _palette_colour(rng)[None, None] * v[..., None]
        for _ in range(int(rng.integers(2, 5))):  # large coloured regions (landscape, abstract shapes)
            m = _spectral_noise(rng, n, 3.0) > rng.uniform(0.45, 0.65)
            img = np.where(m[..., None], _palette_colour(rng)[None, None] * (0.8 + 0.4 * _spectral_noise(
                rng, n, 2.0)[..., None]), img)
        for _ in range(int(rng.integers(0, 5))):  # rectangles / discs
            cu, cv = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9)
            ru, rv = rng.uniform(0.03, 0.25), rng.uniform(0.03, 0.25)
            m = ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 < 1 if rng.random() < 0.5 else \
                (np.abs(u - cu) < ru) & (np.abs(v - cv) < rv)
            img = np.where(m[..., None], _palette_colour(rng)[None, None], img)
        detail = np.stack([_spectral_noise(rng, n, 2.0) for _ in range(3)], -1)
        return np.clip(img * (0.85 + 0.3 * detail), 0, 1)
    if name == "books":  # spines side by side: random widths, colours, title bands
        img = np.empty((n, n, 3))
        x = 0
        while x < n:
            bw = int(rng.integers(6, 28))
            c = _palette_colour(rng)
            img[:, x:x + bw] = c
            if rng.random() < 0.6:
                y0 = int(rng.integers(n // 8, n // 2))
                img[y0:y0 + int(rng.integers(6, 30)), x + 2:x + bw - 2] = _palette_colour(rng)
            img[:, x:x + 1] *= 0.4  # the gap between books
            x += bw
        height = rng.uniform(0.6, 1.0, n)  # uneven tops: the space above a book is dark
        cols = np.repeat(height[::12], 12)[:n]
        img[(1 - v) > cols[None, :]] *= 0.15
        return np.clip(img * (0.85 + 0.3 * _spectral_noise(rng, n, 2.0)[..., None]), 0, 1)
    if name == "paper":  # white sheet with lines of text
        img = np.full((n, n, 3), 0.93) * rng.uniform(0.93, 1.03, 3)
        rows = (v * 24 % 1 < 0.35) & (v > 0.1) & (v < 0.9) & (u > 0.1) & (u < 0.9)
        words = _spectral_noise(rng, n, 0.5, lo=0.05, aniso=(1.0, 0.01)) > 0.45
        img[rows & words] *= 0.35
        return img
    if name == "screen":  # a dark screen with a faint picture and a reflection gradient
        pic = _colour("poster", rng, n) * rng.uniform(0.0, 0.5)
        return np.clip(0.04 + pic + 0.08 * (u + v)[..., None] * rng.random(), 0, 1)
    if name == "whiteboard":
        img = np.full((n, n, 3), 0.9)
        for _ in range(int(rng.integers(0, 8))):  # marker strokes
            y0, x0 = rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.6)
            m = (np.abs(v - y0 - 0.03 * np.sin(40 * u)) < 0.006) & (u > x0) & (u < x0 + rng.uniform(0.1, 0.4))
            img[m] = PALETTE[int(rng.choice([6, 14, 18, 16]))]
        return img * (0.95 + 0.1 * _spectral_noise(rng, n, 2.0)[..., None])
    if name == "sky":  # the bright view out of a window: sky over blurred buildings / trees
        sky = np.array([0.75, 0.85, 1.0]) * rng.uniform(0.85, 1.0)
        img = np.broadcast_to(sky, (n, n, 3)).copy() * (0.8 + 0.2 * (1 - v))[..., None]
        horizon = rng.uniform(0.3, 0.8) + 0.15 * (_spectral_noise(rng, n, 3.0)[0] - 0.5)
        ground = v > horizon[None, :]
        green = np.array([0.35, 0.45, 0.3]) if rng.random() < 0.5 else np.array([0.55, 0.52, 0.5])
        img[ground] = (green * (0.6 + 0.5 * _spectral_noise(rng, n, 2.0)[..., None]))[ground]
        return np.clip(img, 0, 1)
    raise KeyError(name)


@lru_cache(maxsize=None)
def texture(name: str, variant: int) -> np.ndarray:
    """Variant ``variant`` of pattern ``name``: float32 (TEX, TEX) grey in [0, 1] or (TEX, TEX, 3) colour. Made on
    first use from a seed of its own, so it is the same in every process whatever was made before."""
    names = GREY + COLOUR
    if name not in names or not 0 <= variant < VARIANTS:
        raise KeyError(f"no texture {name!r} variant {variant}")
    rng = np.random.default_rng([0x7E47, names.index(name), variant])
    make = _grey if name in GREY else _colour
    return make(name, rng, TEX).astype(np.float32)


def _jitter(c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness varies a lot, hue a little (a per-channel jitter would tint whites, and saturation amplify it)."""
    return c * rng.uniform(0.8, 1.12) * rng.uniform(0.97, 1.03, 3)


def _saturate(c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The palette is muted; real rooms' albedos are often more saturated and darker or lighter."""
    grey = float(c.mean())
    return grey + (c - grey) * rng.uniform(1.0, 1.9)


def tex_material(rng: np.random.Generator, colours: list[int], patterns: list[str], *, contrast=(0.55, 0.9),
                 emissive: float = 0.0, gloss: tuple[float, float] | None = None, stretch: bool | None = None,
                 emit_colour=(1.0, 1.0, 1.0)) -> TexMaterial:
    """A nyud-profile material: base albedo from ``colours`` (palette indices), a pattern from ``patterns`` (nyud
    names or the basic profile's, which are mapped through ``ALIASES``)."""
    name = str(rng.choice(patterns))
    if name in ALIASES:
        name = str(rng.choice(ALIASES[name]))
    if name not in GREY and name not in COLOUR:
        raise ValueError(f"unknown texture pattern {name!r}")
    c1 = _saturate(_jitter(PALETTE[int(rng.choice(colours))], rng), rng)
    if rng.random() < 0.25 and name not in ("plaster", "plain"):
        c2 = _saturate(_jitter(PALETTE[int(rng.choice(ANY))], rng), rng)
    else:
        c2 = c1 * rng.uniform(*contrast)
    lo, hi = TILE_METRES.get(name, (1.0, 1.0))
    if gloss is None:  # varnished wood, leather, metal, tiles, marble and screens shine; the rest is matte
        gloss = (0.05, 0.3) if name in GLOSSY and rng.random() < 0.7 else (0.0, 0.0)
    return TexMaterial(name, np.clip(c2, 0, 1).astype(np.float32), np.clip(c1, 0, 1).astype(np.float32),
                       1.0 / float(rng.uniform(lo, hi)), float(rng.uniform(0, 64)), float(emissive),
                       texture=int(rng.integers(VARIANTS)), stretch=name in COLOUR if stretch is None else stretch,
                       gloss=float(rng.uniform(*gloss)), shininess=float(rng.uniform(8, 60)),
                       emit_colour=tuple(float(c) for c in emit_colour))


def albedo(mat: Material, u: np.ndarray, v: np.ndarray, extent: tuple[float, float] | None = None) -> np.ndarray:
    """(n,) texture coordinates in metres (on a face of half sizes ``extent`` for stretched materials) ->
    (n, 3) float32 albedo. Materials of the basic profile are mapped through ``ALIASES`` to variant 0."""
    if not isinstance(mat, TexMaterial):  # a basic-profile material in a nyud room: its colours, a nyud pattern
        mat = TexMaterial(ALIASES.get(mat.pattern, (mat.pattern,))[0], mat.c2, mat.c1, 1.0, mat.offset, mat.emissive)
    tex = mat.image if isinstance(mat, PhotoMaterial) else texture(mat.pattern, mat.texture)
    m = TEX - 1
    if mat.stretch and extent is not None:
        iu = np.clip(((u / (2 * extent[0]) + 0.5) * TEX).astype(np.int32), 0, m)
        iv = np.clip(((0.5 - v / (2 * extent[1])) * TEX).astype(np.int32), 0, m)
    else:
        s = mat.freq * TEX
        iu = ((u + mat.offset) * s).astype(np.int32) & m
        iv = ((v + mat.offset) * s).astype(np.int32) & m
    t = tex[iv, iu]
    if isinstance(mat, PhotoMaterial):
        return t * mat.c1
    if t.ndim == 1:  # grey pattern: coded between the two albedos
        return mat.c1 + (mat.c2 - mat.c1) * t[:, None]
    return t * (0.5 * (mat.c1 + mat.c2) / max(float(np.mean(0.5 * (mat.c1 + mat.c2))), 1e-3)) ** 0.3
