"""The asset index (``mtlsi-synth assets DIR``) and the loaded asset library the generator draws from.

``index_assets(root)`` walks a folder the user points to and checks every file it may use: meshes (``*.obj``,
``*.gltf``, ``*.glb``; sizes from a SweetHome3D ``DefaultFurnitureCatalog.properties`` beside OBJ files, else the
mesh's own metric bounding box), photo textures (images in a folder named ``textures``, PBR normal / roughness /
ARM maps left out) and HDR panoramas (``*.hdr``). A file that does not load gives a one-line error naming it; the
rest stays usable. The result (``AssetIndex``) is written as ``asset_index.json``. ``AssetLibrary`` loads what an
index lists: meshes placed in the local frame of ``rooms`` objects and cut into ``mesh.MeshShape`` parts, textures
as ``PhotoMaterial`` images, panoramas as spherical-harmonic irradiance. ``builtin_library()`` is the small
procedural set (``procedural``) used where no folder is given, so the mesh path runs without any download.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import trimesh

from mtlsi_core.checkpoint import atomic_write_bytes
from mtlsi_core.data.assets.catalog import asset_type, read_sweethome3d_catalog, texture_uses
from mtlsi_core.data.assets.mesh import MeshShape
from mtlsi_core.data.assets.procedural import builtin_meshes
from mtlsi_core.data.render.lighting import sh_environment
from mtlsi_core.data.render.textures import TEX

log = logging.getLogger(__name__)
logging.getLogger("trimesh").setLevel(logging.WARNING)  # one INFO line per polygon face it triangulates
INDEX_NAME = "asset_index.json"
INDEX_VERSION = 1
MESH_SUFFIXES = (".obj", ".gltf", ".glb")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAP_WORDS = ("nor", "normal", "arm", "rough", "roughness", "metal", "metallic", "ao", "disp", "bump", "spec")
MAX_PARTS = 6  # mesh parts per asset (each its own material); smaller groups are merged into the largest ones
SWEETHOME3D_CATALOG = "DefaultFurnitureCatalog.properties"
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # (x, y, z) -> (x, -z, y): front -> -y


class AssetError(ValueError):
    """A file of an asset folder that cannot be used (the message names it)."""


@dataclass
class MeshEntry:
    file: str  # relative to the index root
    name: str
    type: str  # rooms.NYUD_TYPES key
    size: tuple[float, float, float]  # metres (w, d, h) it is scaled to
    source: str  # "sweethome3d" (catalogue size) or "mesh" (its own metric size)
    triangles: int
    parts: int


@dataclass
class AssetIndex:
    root: str
    meshes: list[MeshEntry] = field(default_factory=list)
    textures: list[dict] = field(default_factory=list)  # {file, uses, size}
    environments: list[dict] = field(default_factory=list)  # {file, size}
    unused: list[dict] = field(default_factory=list)  # {file, why}
    errors: list[dict] = field(default_factory=list)  # {file, error}

    def to_json(self) -> dict:
        return {"version": INDEX_VERSION, "root": self.root, "meshes": [asdict(m) for m in self.meshes],
                "textures": self.textures, "environments": self.environments, "unused": self.unused,
                "errors": self.errors}

    @classmethod
    def from_json(cls, data: dict, root: str | Path) -> "AssetIndex":
        if data.get("version") != INDEX_VERSION:
            raise AssetError(f"{Path(root) / INDEX_NAME}: index version {data.get('version')!r}, expected "
                             f"{INDEX_VERSION}; run `mtlsi-synth assets {root}` again")
        meshes = [MeshEntry(**{**m, "size": tuple(m["size"])}) for m in data["meshes"]]
        return cls(str(root), meshes, data["textures"], data["environments"], data["unused"], data["errors"])

    def digest(self) -> str:
        """Identifies what the generator draws from (the frames depend on it)."""
        used = {k: v for k, v in self.to_json().items() if k in ("meshes", "textures", "environments")}
        return hashlib.sha256(json.dumps(used, sort_keys=True).encode()).hexdigest()[:16]

    def summary(self) -> str:
        types = sorted({m.type for m in self.meshes})
        return (f"{len(self.meshes)} meshes ({len(types)} object types: {', '.join(types)}), {len(self.textures)} "
                f"photo textures, {len(self.environments)} HDR panoramas; {len(self.unused)} files unused, "
                f"{len(self.errors)} errors")


# ------------------------------------------------------------------------------------------------- meshes
def _mesh_parts(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(vertices, triangles, base-colour image or None) per part of a mesh file, in the file's own frame."""
    try:
        loaded = trimesh.load(str(path), split_object=True, group_material=False, process=False)
    except Exception as e:  # trimesh raises many types on broken files
        raise AssetError(f"{path}: not a readable mesh ({type(e).__name__}: {e})") from None
    geoms = loaded.dump() if isinstance(loaded, trimesh.Scene) else [loaded]
    parts = []
    for g in geoms:
        if not isinstance(g, trimesh.Trimesh) or len(g.faces) == 0:
            continue
        image = None
        material = getattr(getattr(g, "visual", None), "material", None)
        tex = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
        if tex is not None:
            image = np.asarray(tex.convert("RGB"))
        parts.append((np.asarray(g.vertices, np.float64), np.asarray(g.faces, np.int64), image))
    if not parts:
        raise AssetError(f"{path}: no triangles")
    for v, _, _ in parts:
        if not np.all(np.isfinite(v)):
            raise AssetError(f"{path}: vertices that are not finite")
    return parts


def _merge(parts: list, limit: int) -> list:
    """At most ``limit`` parts: the largest kept, the others appended to them in turn."""
    parts = sorted(parts, key=lambda p: -len(p[1]))
    kept = [list(p) for p in parts[:limit]]
    for i, (v, f, _img) in enumerate(parts[limit:]):
        k = kept[i % limit]
        k[1] = np.concatenate([k[1], f + len(k[0])])
        k[0] = np.concatenate([k[0], v])
    return [tuple(k) for k in kept]


@dataclass
class MeshAsset:
    """A mesh ready to place: parts in the object's local frame (footprint centre on the floor at the origin, x =
    width, y = depth with the front at -y, z up), at the size of its entry."""

    entry: MeshEntry
    # (shape, centre of its bounding box in the object's frame, its own photo texture (TEX, TEX, 3 linear) or None)
    parts: list[tuple[MeshShape, np.ndarray, np.ndarray | None]]

    @property
    def size(self) -> np.ndarray:
        return np.asarray(self.entry.size, np.float64)


def load_mesh(path: Path, size: tuple[float, float, float] | None) -> tuple[list, tuple[float, float, float]]:
    """Parts of a Y-up mesh file turned Z-up (front at -y), scaled to ``size`` (w, d, h metres; None: as it is),
    standing on z = 0 and centred on its footprint. Returns (parts as (vertices, triangles, image), size)."""
    raw = _merge(_mesh_parts(path), MAX_PARTS)
    verts = [v @ Y_UP_TO_Z_UP.T for v, _, _ in raw]
    allv = np.concatenate(verts)
    lo, hi = allv.min(axis=0), allv.max(axis=0)
    extent = hi - lo
    if np.any(extent <= 1e-6):
        raise AssetError(f"{path}: flat or empty bounding box {extent.round(6).tolist()}")
    scale = np.ones(3) if size is None else np.asarray(size, np.float64) / extent
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    out = [((v - centre) * scale, f, img) for v, (_, f, img) in zip(verts, raw)]
    final = tuple(float(x) for x in extent * scale)
    return out, final


def _shapes(parts: list) -> list[tuple[MeshShape, np.ndarray, np.ndarray | None]]:
    shapes = []
    for v, f, img in parts:
        lo, hi = v.min(axis=0), v.max(axis=0)
        c = (lo + hi) / 2
        shapes.append((MeshShape(v - c, f), c, None if img is None else texture_from_rgb(img)))
    return shapes


# ------------------------------------------------------------------------------------------------- images
def read_texture(path: Path) -> np.ndarray:
    """A photo texture as (TEX, TEX, 3) float32 linear albedo (sRGB decoded)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise AssetError(f"{path}: not a readable image")
    return texture_from_rgb(img[:, :, ::-1])


def texture_from_rgb(rgb: np.ndarray) -> np.ndarray:
    small = cv2.resize(np.ascontiguousarray(rgb), (TEX, TEX), interpolation=cv2.INTER_AREA)
    return ((small.astype(np.float32) / 255.0) ** 2.2).astype(np.float32)


def read_panorama(path: Path) -> np.ndarray:
    """An HDR panorama as (H, W, 3) float32 linear RGB, downsampled to at most 128 x 64 (irradiance needs no more)."""
    img = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    if img is None or img.ndim != 3 or img.dtype != np.float32:
        raise AssetError(f"{path}: not a readable Radiance HDR image")
    if not np.all(np.isfinite(img)) or img.min() < 0:
        raise AssetError(f"{path}: radiance values that are negative or not finite")
    h, w = img.shape[:2]
    if w != 2 * h:
        raise AssetError(f"{path}: {w}x{h} is not an equirectangular panorama (width = 2 x height)")
    return cv2.resize(img, (128, 64), interpolation=cv2.INTER_AREA)[:, :, ::-1].copy()


def _is_texture(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    if not any("texture" in p.lower() for p in rel.parts[:-1]):
        return False
    stem_words = set(path.stem.lower().replace("-", "_").split("_"))
    return len(stem_words) == 1 or not stem_words & set(MAP_WORDS)  # "metal.png" is a texture, "x_metal_1k" a map


# ------------------------------------------------------------------------------------------------- index
def index_assets(root: str | Path) -> AssetIndex:
    """Check every usable file under ``root`` (see the module's docstring); never raises for a bad file."""
    root = Path(root)
    if not root.is_dir():
        raise AssetError(f"{root}: not a folder")
    index = AssetIndex(str(root))
    catalogues: dict[Path, dict] = {}
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        rel = str(path.relative_to(root))
        suffix = path.suffix.lower()
        try:
            if suffix in MESH_SUFFIXES:
                folder = path.parent
                if folder not in catalogues:
                    cat = folder / SWEETHOME3D_CATALOG
                    catalogues[folder] = read_sweethome3d_catalog(cat) if cat.is_file() else {}
                info = catalogues[folder].get(path.name)
                if info is not None and info["door_or_window"]:
                    index.unused.append({"file": rel, "why": "door or window (the rooms' wall items stay procedural)"})
                    continue
                name = info["name"] if info else path.stem
                kind = asset_type(name)
                if kind is None:
                    index.unused.append({"file": rel, "why": f"no object type for {name!r} (catalog.ASSET_TYPES)"})
                    continue
                parts, size = load_mesh(path, info["size"] if info else None)
                if max(size) > 6.0 or min(size) < 0.01:
                    raise AssetError(f"{path}: size {tuple(round(s, 3) for s in size)} m is not a piece of "
                                     "furniture's (units? no catalogue entry gives it one)")
                index.meshes.append(MeshEntry(rel, name, kind, size, "sweethome3d" if info else "mesh",
                                              int(sum(len(f) for _, f, _ in parts)), len(parts)))
            elif suffix in IMAGE_SUFFIXES and _is_texture(path, root):
                tex = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if tex is None:
                    raise AssetError(f"{path}: not a readable image")
                if min(tex.shape[:2]) < 64:
                    raise AssetError(f"{path}: {tex.shape[1]}x{tex.shape[0]} is too small for a texture")
                index.textures.append({"file": rel, "uses": list(texture_uses(path.stem)),
                                       "size": [int(tex.shape[0]), int(tex.shape[1])]})
            elif suffix == ".hdr":
                read_panorama(path)
                index.environments.append({"file": rel})
        except AssetError as e:
            index.errors.append({"file": rel, "error": str(e)})
            log.warning("%s", e)
    return index


def write_index(index: AssetIndex, out: str | Path | None = None) -> Path:
    path = Path(out) if out is not None else Path(index.root) / INDEX_NAME
    atomic_write_bytes(path, (json.dumps(index.to_json(), indent=1) + "\n").encode())
    return path


def read_index(root: str | Path) -> AssetIndex:
    """The folder's ``asset_index.json``, or an index made now (not written) where it has none."""
    root = Path(root)
    path = root / INDEX_NAME
    if not path.is_file():
        log.warning("%s has no %s: indexing it now (write one with `mtlsi-synth assets %s`)", root, INDEX_NAME, root)
        return index_assets(root)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise AssetError(f"{path}: unreadable index ({e}); run `mtlsi-synth assets {root}` again") from None
    return AssetIndex.from_json(data, root)


# ------------------------------------------------------------------------------------------------- library
@dataclass
class AssetLibrary:
    """What the generator draws from: meshes by object type, photo textures by use, irradiance of panoramas."""

    name: str  # "builtin" or the folder
    digest: str
    meshes: dict[str, list[MeshAsset]]
    textures: dict[str, list[np.ndarray]]  # use -> (TEX, TEX, 3) linear albedo images
    environments: list[np.ndarray]  # (H, W, 3) panoramas (linear, downsampled)
    # how often the rooms use them (draws of their own random stream: the nyud profile's stream is unchanged)
    p_mesh: float = 0.7  # an object whose type has meshes is one of them
    p_photo_room: float = 0.5  # a wall / floor / ceiling gets a photo texture
    p_photo_object: float = 0.35  # a mesh part without its own texture gets a photo texture
    p_environment: float = 0.8  # the room's ambient light is a panorama's irradiance

    def types(self) -> list[str]:
        return sorted(self.meshes)

    def environment(self, rng: np.random.Generator, ambient: float) -> np.ndarray | None:
        """SH irradiance coefficients of a drawn panorama, turned by a drawn yaw, scaled to ``ambient``."""
        if not self.environments or rng.random() >= self.p_environment:
            return None
        pano = self.environments[int(rng.integers(len(self.environments)))]
        coeffs = sh_environment(pano, float(rng.uniform(-np.pi, np.pi)))
        lum = float(coeffs[0] @ np.array([0.2126, 0.7152, 0.0722])) * 0.282095
        return (coeffs * (ambient / max(lum, 1e-6))).astype(np.float32)


def _library_from(index: AssetIndex, name: str) -> AssetLibrary:
    root = Path(index.root)
    meshes: dict[str, list[MeshAsset]] = {}
    for entry in index.meshes:
        parts, _size = load_mesh(root / entry.file, entry.size)
        meshes.setdefault(entry.type, []).append(MeshAsset(entry, _shapes(parts)))
    textures: dict[str, list[np.ndarray]] = {}
    for t in index.textures:
        img = read_texture(root / t["file"])
        for use in t["uses"]:
            textures.setdefault(use, []).append(img)
    envs = [read_panorama(root / e["file"]) for e in index.environments]
    return AssetLibrary(name, index.digest(), meshes, textures, envs)


@lru_cache(maxsize=4)
def load_library(root: str) -> AssetLibrary:
    """The library of an asset folder (its index), or ``builtin``; once per process."""
    if root == "builtin":
        return builtin_library()
    t0 = time.perf_counter()
    index = read_index(root)
    if not index.meshes and not index.textures and not index.environments:
        raise AssetError(f"{root}: no usable meshes, textures or panoramas ({index.summary()})")
    lib = _library_from(index, str(root))
    log.info("assets of %s loaded in %.1f s: %s", root, time.perf_counter() - t0, index.summary())
    return lib


def builtin_library() -> AssetLibrary:
    """The procedural asset set (no download): a few furniture meshes, no photo textures, no panoramas."""
    meshes: dict[str, list[MeshAsset]] = {}
    digest = hashlib.sha256()
    for kind, name, parts in builtin_meshes():
        allv = np.concatenate([v for v, _ in parts])
        lo, hi = allv.min(axis=0), allv.max(axis=0)
        centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
        placed = [(v - centre, f, None) for v, f in parts]
        size = tuple(float(x) for x in hi - lo)
        entry = MeshEntry(f"builtin:{name}", name, kind, size, "builtin", int(sum(len(f) for _, f in parts)),
                          len(parts))
        meshes.setdefault(kind, []).append(MeshAsset(entry, _shapes(placed)))
        digest.update(json.dumps(asdict(entry), sort_keys=True).encode())
    return AssetLibrary("builtin", digest.hexdigest()[:16], meshes, {}, [])
