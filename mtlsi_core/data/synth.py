"""Synthetic multi-task indoor scenes (``mtlsi-synth``), written in the NYUD-MT layout with exact ground truth.

``render_scene(seed)`` draws a procedural room (``mtlsi_core.data.scene``) and ray-casts it analytically
through a pinhole camera with Kinect-like intrinsics, giving per pixel: an RGB image (procedural textures,
Lambertian + ambient shading from ceiling point lights and a directional fill, vignetting, slight blur and
sensor noise), NYUDv2 40-class labels, z-depth in metres, unit normals in the camera optical frame (x right,
y down, z forward; facing the camera), and boundaries (pixels where the object id changes or the depth jumps
by more than 10 %, two pixels wide, i.e. both sides of a boundary; the label is a function of the object id,
so every label change is a boundary too).

``render_scene(seed, profile="nyud")`` renders the NYUDv2-like profile instead: room types with their furniture and
clutter (``mtlsi_core.data.rooms``), shaded with cast shadows and ambient occlusion and recorded by a camera model
(``mtlsi_core.data.render``); its ground truth is exact in the same way. ``basic`` (the default) is the original
generator, unchanged byte for byte. With ``assets`` (``--assets DIR``, a folder indexed by ``mtlsi-synth assets DIR``,
or ``builtin``) the nyud rooms take furniture meshes, photo textures and HDR light from it
(``mtlsi_core.data.assets``); without, they are the frames they always were.

``write_dataset`` writes frames ``000000 ...`` as ``images/*.png``, ``depth/*.npy`` (float32 metres),
``normals/*.npy`` (float32, H x W x 3), ``edge/*.png`` (0 / 255), ``segmentation/*.png`` (1..40, 0 = unlabelled),
``gt_sets/{train,val}.txt`` and ``camera.json`` (intrinsics, and the profile and seed that made the set). Frame i
depends only on (seed, i, profile). The NYUD-MT loader (``mtlsi_core.data.nyud``) reads the result.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from mtlsi_core.checkpoint import atomic_write_bytes
from mtlsi_core.data.assets.library import AssetError, AssetLibrary, index_assets, load_library, write_index
from mtlsi_core.data.io import FAST_PNG, limit_cv2_threads, worker_context, write_npy, write_png
from mtlsi_core.data.materials import albedo
from mtlsi_core.data.raycast import FACE_NORMALS, surface_slices, zbuffer
from mtlsi_core.data.scene import Scene, sample_scene

# NYU Depth v2 toolbox, colour camera of the Kinect at 640 x 480: fx, fy, cx, cy (pixels).
KINECT_RGB_640x480 = (518.857901, 519.469611, 325.582449, 253.736166)
DEFAULT_SIZE = (480, 640)
PROFILES = ("basic", "nyud")  # generator profiles (see render_scene)
NYUD_SUPERSAMPLE = 3  # the nyud profile shades 3 x 3 rays per pixel (odd: the centre ray is the pixel's)
EDGE_DEPTH_JUMP = 0.10  # relative depth change between neighbours that counts as an occlusion boundary


@dataclass
class SynthFrame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    semseg: np.ndarray  # (H, W) uint8, 0-based NYUD ids 0..39, 255 = unlabelled
    depth: np.ndarray  # (H, W) float32, metres along the optical axis
    normals: np.ndarray  # (H, W, 3) float32 unit vectors, camera optical frame, facing the camera
    edge: np.ndarray  # (H, W) uint8 0/1
    K: np.ndarray  # (3, 3) float64
    instance: np.ndarray  # (H, W) int16 object id (0..5: room faces)


def kinect_intrinsics(size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    """The Kinect colour intrinsics scaled from 640 x 480 to ``size`` = (H, W) (pixel centres kept aligned)."""
    h, w = size
    fx, fy, cx, cy = KINECT_RGB_640x480
    sx, sy = w / 640.0, h / 480.0
    return np.array([[fx * sx, 0.0, (cx + 0.5) * sx - 0.5], [0.0, fy * sy, (cy + 0.5) * sy - 0.5], [0.0, 0.0, 1.0]])


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    if len(size) != 2 or int(size[0]) < 8 or int(size[1]) < 8:
        raise ValueError(f"size must be (H, W) with both sides >= 8, got {tuple(size)}")
    return int(size[0]), int(size[1])


def _check_intrinsics(K: object, size: tuple[int, int]) -> np.ndarray:
    if K is None:
        return kinect_intrinsics(size)
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"intrinsics must be a finite 3x3 matrix with fx, fy > 0, got {K!r}")
    return K


@lru_cache(maxsize=8)
def _pixel_rays(key: tuple[float, ...], h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera-frame ray directions (x/z per column, y/z per row) and a vignetting map."""
    fx, fy, cx, cy = key
    xu = ((np.arange(w) - cx) / fx).astype(np.float32)[None, :]
    yv = ((np.arange(h) - cy) / fy).astype(np.float32)[:, None]
    r2 = ((np.arange(w) - w / 2) / (w / 2))[None, :] ** 2 + ((np.arange(h) - h / 2) / (h / 2))[:, None] ** 2
    vignette = (1.0 - 0.12 * r2).astype(np.float32)
    return xu, yv, vignette


@dataclass
class Cast:
    """The geometry of one ray-cast view: rays, z-depth, hit primitive and face, object ids, labels, normals."""

    xu: np.ndarray  # (1, W) x / z of each column's ray (camera frame)
    yv: np.ndarray  # (H, 1) y / z of each row's ray
    vignette: np.ndarray  # (H, W) the basic profile's vignetting
    D: tuple[np.ndarray, np.ndarray, np.ndarray]  # world ray directions (camera-frame z = 1)
    depth: np.ndarray
    face: np.ndarray
    prim: np.ndarray
    instance: np.ndarray
    semseg: np.ndarray
    n: list[np.ndarray]  # camera-frame normal planes (x, y, z), facing the camera


def render(scene: Scene, K: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> SynthFrame:
    """Ray-cast ``scene`` from its camera; ``rng`` draws only the sensor noise."""
    c = cast(scene, K, size)
    image = _shade(scene, c.depth, c.prim, c.face, c.n, c.D, c.xu, c.yv, c.vignette, 6 + len(scene.parts), rng)
    return SynthFrame(image, c.semseg, c.depth, np.stack(c.n, axis=-1), _boundaries(c.instance, c.depth), K.copy(),
                      c.instance)


def cast(scene: Scene, K: np.ndarray, size: tuple[int, int]) -> Cast:
    """Ray-cast ``scene`` from its camera at ``size`` with intrinsics ``K``: exact geometry and labels, no image."""
    h, w = size
    xu, yv, vignette = _pixel_rays((K[0, 0], K[1, 1], K[0, 2], K[1, 2]), h, w)
    R, o = scene.R_wc, scene.cam_pos
    r = [[float(v) for v in row] for row in R]
    D = tuple((r[i][0] * xu + r[i][1] * yv + r[i][2]).astype(np.float32) for i in range(3))

    # z-buffer: the room first (prims 0..5 are its faces), then every part inside its screen rectangle
    depth, face, prim, rects = zbuffer([p.prim for p in scene.parts], scene.room, o, R, K, size, D)

    obj_of_prim = np.array(list(range(6)) + [p.obj for p in scene.parts], np.int16)
    instance = obj_of_prim[prim]
    semseg = np.array(scene.labels, np.uint8)[instance]

    # normals: a table per (prim, face) for flat faces, computed from the hit point on curved ones
    table_w = np.concatenate([np.broadcast_to(FACE_NORMALS, (6, 6, 3))]
                             + [p.prim.face_normals_world()[None] for p in scene.parts])
    table_c = (table_w.reshape(-1, 3) @ R).astype(np.float32)  # camera frame: R^T n
    idx = prim.astype(np.int32) * 6 + face
    n = [table_c[:, i][idx] for i in range(3)]
    for k, (part, rect) in enumerate(zip(scene.parts, rects), start=6):
        if not part.prim.curved or rect.empty:
            continue
        sl = rect.slices
        m = prim[sl] == k
        if not m.any():
            continue
        t = depth[sl][m]
        nw = part.prim.curved_normals(*(float(o[i]) + t * D[i][sl][m] for i in range(3)), face[sl][m])
        inv = 1.0 / np.sqrt(nw[0] * nw[0] + nw[1] * nw[1] + nw[2] * nw[2])  # float32 hit points: re-normalise
        for i in range(3):
            n[i][sl][m] = (r[0][i] * nw[0] + r[1][i] * nw[1] + r[2][i] * nw[2]) * inv
    flip = (n[0] * xu + n[1] * yv + n[2]) > 0  # make every normal face the camera
    for i in range(3):
        np.negative(n[i], out=n[i], where=flip)

    return Cast(xu, yv, vignette, D, depth, face, prim, instance, semseg, n)


def _shade(scene: Scene, depth, prim, face, n, D, xu, yv, vignette, nprim: int, rng: np.random.Generator) -> np.ndarray:
    h, w = depth.shape
    R, o = scene.R_wc, scene.cam_pos
    # albedo: pixels sorted by primitive so each primitive's texture is computed on one contiguous slice
    order, slices = surface_slices(scene, depth, prim, face, D, nprim)
    alb_s = np.empty((prim.size, 3), np.float32)
    emissive = np.zeros(nprim, np.float32)
    for k, sl, _frame, mat, u, v in slices:
        alb_s[sl] = albedo(mat, u, v)
        emissive[k] = mat.emissive
    alb = np.empty_like(alb_s)
    alb[order] = alb_s
    alb = alb.reshape(h, w, 3)

    # Lambertian + ambient in the camera frame
    pc = (depth * xu, depth * yv, depth)
    light = np.full((h, w), scene.ambient, np.float32)
    for lt in scene.lights:
        if lt.position is not None:
            lp = (lt.position - o) @ R
            v = [float(lp[i]) - pc[i] for i in range(3)]
            d2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2]
            ndotl = (n[0] * v[0] + n[1] * v[1] + n[2] * v[2]) / np.sqrt(d2)
            light += np.maximum(ndotl, 0.0) * (lt.intensity / (1.0 + d2 / 6.25))
        else:
            ld = lt.direction @ R
            light += lt.intensity * np.maximum(n[0] * float(ld[0]) + n[1] * float(ld[1]) + n[2] * float(ld[2]), 0.0)
    light *= vignette * np.float32(scene.exposure)
    if emissive.any():
        light += emissive[prim]
    light *= 255.0
    col = cv2.GaussianBlur(alb * light[:, :, None], (0, 0), 0.6)  # a little optical blur against aliasing
    col += rng.integers(-3, 4, size=(h, w, 1), dtype=np.int8)  # sensor noise (luminance)
    return np.clip(col, 0, 255, out=col).astype(np.uint8)


def _boundaries(instance: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """1 where the object id changes or depth jumps between 4-neighbours (both sides of the boundary)."""
    edge = np.zeros(instance.shape, bool)
    for a, b in (((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
                 ((slice(1, None), slice(None)), (slice(None, -1), slice(None)))):
        da, db = depth[a], depth[b]
        change = (instance[a] != instance[b]) | (np.abs(da - db) > EDGE_DEPTH_JUMP * np.minimum(da, db))
        edge[a] |= change
        edge[b] |= change
    return edge.view(np.uint8)


def supersampled_intrinsics(K: np.ndarray, factor: int) -> np.ndarray:
    """K of the same camera at ``factor`` times the resolution (pixel centres kept aligned)."""
    Ks = K.astype(np.float64).copy()
    Ks[0, 0] *= factor
    Ks[1, 1] *= factor
    Ks[0, 2] = (K[0, 2] + 0.5) * factor - 0.5
    Ks[1, 2] = (K[1, 2] + 0.5) * factor - 0.5
    return Ks


def render_nyud(scene: Scene, K: np.ndarray, size: tuple[int, int], rng: np.random.Generator,
                supersample: int = NYUD_SUPERSAMPLE, *, shadows: bool = True, occlusion: bool = True,
                camera: bool = True, params: object = None, shadow_maps: dict | None = None) -> SynthFrame:
    """The nyud profile's rendering of ``scene``: ground truth from the exact cast at ``size``; the image shaded
    (``render.lighting``: shadows, ambient occlusion, highlights) on a cast ``supersample`` (odd) times finer in each
    direction, averaged down (anti-aliasing), then recorded by a drawn camera (``render.sensor``). ``shadows``,
    ``occlusion``, ``camera`` = False leave that part out (a plain gamma camera without noise for the last), to
    measure what each buys; the profile uses them all. ``params``: the camera's ``sensor.SensorParams`` (a
    sequence's one camera; ``rng`` then draws only the noise), default drawn from ``rng``; ``shadow_maps``: a cache
    of the room's shadow maps for views of the same room (``lighting.shade``)."""
    from mtlsi_core.data.render import lighting, sensor

    if int(supersample) < 1 or int(supersample) % 2 == 0:
        raise ValueError(f"supersample must be an odd number >= 1, got {supersample}")
    h, w = size
    c = cast(scene, K, size)
    normals = np.stack(c.n, axis=-1)
    ao = lighting.ambient_occlusion(c.depth, normals, c.xu, c.yv) if occlusion else np.ones(size, np.float32)
    s = int(supersample)
    if s > 1:
        fine = cast(scene, supersampled_intrinsics(K, s), (h * s, w * s))
        ao_fine = cv2.resize(ao, (w * s, h * s), interpolation=cv2.INTER_LINEAR)
        radiance = lighting.shade(scene, fine, ao_fine, shadows=shadows, shadow_maps=shadow_maps)
        radiance = radiance.reshape(h, s, w, s, 3).mean(axis=(1, 3))
    else:
        radiance = lighting.shade(scene, c, ao, shadows=shadows, shadow_maps=shadow_maps)
    if params is None:
        params = sensor.SensorParams.sample(rng) if camera else sensor.SensorParams.plain()
    image = sensor.apply(radiance, params, rng)
    return SynthFrame(image, c.semseg, c.depth, normals, _boundaries(c.instance, c.depth), K.copy(), c.instance)


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    return profile


def asset_library(assets: str | AssetLibrary | None, profile: str) -> AssetLibrary | None:
    """The library that ``assets`` names (a folder indexed by ``mtlsi-synth assets``, ``builtin``, or one already
    loaded); only the nyud profile's rooms take assets."""
    if assets is None or isinstance(assets, AssetLibrary):
        lib = assets
    else:
        lib = load_library(str(assets))
    if lib is not None and profile != "nyud":
        raise ValueError(f"assets are drawn into the nyud profile's rooms only, not {profile!r}")
    return lib


def sample_profile_scene(rng: np.random.Generator, profile: str = "basic",
                         assets: str | AssetLibrary | None = None) -> Scene:
    """The room that ``profile`` draws from ``rng`` (with a camera pose): ``basic``'s ``scene.sample_scene``, or
    ``nyud``'s ``rooms.sample_room`` (with ``assets``: meshes, photo textures and HDR light of that library).
    Single frames (``render_scene``) and sequences (``mtlsi_core.data.sequence``) draw their rooms here, so both see
    the same rooms."""
    check_profile(profile)
    lib = asset_library(assets, profile)
    if profile == "nyud":
        from mtlsi_core.data.rooms import sample_room

        return sample_room(rng, assets=lib)
    return sample_scene(rng)


def render_profile(scene: Scene, K: np.ndarray, size: tuple[int, int], rng: np.random.Generator,
                   profile: str = "basic", **nyud: object) -> SynthFrame:
    """``scene`` rendered as ``profile`` renders its single frames (``render`` or ``render_nyud``; ``nyud``: keyword
    arguments of ``render_nyud``)."""
    if check_profile(profile) == "nyud":
        return render_nyud(scene, K, size, rng, **nyud)  # type: ignore[arg-type]
    return render(scene, K, size, rng)


def render_scene(seed: int, size: Sequence[int] = DEFAULT_SIZE, intrinsics: object = None,
                 profile: str = "basic", assets: str | AssetLibrary | None = None) -> SynthFrame:
    """Draw and render the scene of ``seed`` at ``size`` = (H, W); ``intrinsics``: 3x3 K (default Kinect-like);
    ``profile``: ``basic`` (the original generator, byte for byte) or ``nyud`` (NYUDv2-like rooms, shadows, a camera
    model; ``mtlsi_core.data.rooms`` and ``mtlsi_core.data.render``); ``assets`` (nyud only): an asset folder indexed
    by ``mtlsi-synth assets``, or ``builtin`` (``mtlsi_core.data.assets``)."""
    check_profile(profile)
    size = _check_size(size)
    K = _check_intrinsics(intrinsics, size)
    rng = np.random.default_rng(int(seed))
    return render_profile(sample_profile_scene(rng, profile, assets), K, size, rng, profile)


# --------------------------------------------------------------------------------------------------
# Data set writing
# --------------------------------------------------------------------------------------------------

FOLDERS = ("images", "depth", "normals", "edge", "segmentation", "gt_sets")


def frame_seed(seed: int, index: int) -> int:
    """The scene seed of frame ``index`` of a data set with ``seed`` (independent streams per frame)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0])


def frame_name(index: int) -> str:
    return f"{index:06d}"


def write_frame(out: str | os.PathLike, name: str, frame: SynthFrame) -> None:
    """Write one frame in the NYUD-MT layout (every file atomically)."""
    out = Path(out)
    write_png(out / "images" / f"{name}.png", frame.image, FAST_PNG)
    write_npy(out / "depth" / f"{name}.npy", frame.depth)
    write_npy(out / "normals" / f"{name}.npy", frame.normals)
    write_png(out / "edge" / f"{name}.png", frame.edge * np.uint8(255))
    seg = frame.semseg.astype(np.uint8) + np.uint8(1)  # 0-based -> 1..40; 255 + 1 wraps to 0 = unlabelled
    write_png(out / "segmentation" / f"{name}.png", seg)


def frame_complete(out: str | os.PathLike, name: str) -> bool:
    """Whether every file of frame ``name`` is in ``out`` (each is written atomically, the label map last)."""
    out = Path(out)
    return all((out / d / f"{name}{ext}").is_file() for d, ext in
               (("images", ".png"), ("depth", ".npy"), ("normals", ".npy"), ("edge", ".png"), ("segmentation", ".png")))


def _render_and_write(job: tuple[str, int, tuple[int, int], int, str, str | None]) -> float:
    """Render and write one frame; returns the CPU seconds it took in this process."""
    out, seed, size, index, profile, assets = job
    t0 = time.process_time()
    write_frame(out, frame_name(index), render_scene(frame_seed(seed, index), size, profile=profile, assets=assets))
    return time.process_time() - t0


def split_names(num: int, val_fraction: float, num_val: int | None = None) -> tuple[list[str], list[str]]:
    """Train / val frame names: the last ``num_val`` frames, by default round(num * val_fraction) (at least one
    when val_fraction > 0 and num >= 2), are val."""
    if num_val is not None:
        n_val = int(num_val)
    else:
        n_val = int(round(num * val_fraction))
        if val_fraction > 0 and num >= 2:
            n_val = min(max(n_val, 1), num - 1)
    names = [frame_name(i) for i in range(num)]
    return names[: num - n_val], names[num - n_val:]


def camera_info(size: tuple[int, int], K: np.ndarray, profile: str = "basic", seed: int | None = None,
                assets: AssetLibrary | None = None) -> dict:
    """The data set's camera and how it was made (``profile``, ``seed``, ``assets``: ``mtlsi-synth --profile --seed
    --assets``; the assets by name and by the digest of what they hold)."""
    info = {
        "width": size[1], "height": size[0], "K": K.tolist(), "distortion_model": "none", "D": [0.0] * 5,
        "frame": "optical: x right, y down, z forward", "depth": "metres along z",
        "source": "mtlsi-synth (Kinect-like intrinsics of the NYU Depth v2 colour camera, scaled)",
        "profile": profile,
    }
    if seed is not None:
        info["seed"] = int(seed)
    if assets is not None:
        info["assets"] = {"name": assets.name, "digest": assets.digest}
    return info


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def write_dataset(out: str | os.PathLike, num: int | None = None, seed: int = 0, size: Sequence[int] = DEFAULT_SIZE,
                  val_fraction: float = 0.1, workers: int | None = None, progress: bool = False, *,
                  num_train: int | None = None, num_val: int | None = None, profile: str = "basic",
                  assets: str | None = None) -> dict:
    """Render frames into ``out`` (NYUD-MT layout) with the generator ``profile``. Returns a summary with the
    measured frame rate.

    Either ``num`` frames, of which ``val_fraction`` go to val, or ``num_train`` + ``num_val`` frames. Run again
    into a folder of the same size, profile and seed (an interrupted run), it keeps the frames already complete and
    renders the rest (frame i depends only on the seed and i). ``assets``: an asset folder (``mtlsi-synth assets``)
    or ``builtin``, for the nyud profile.
    """
    check_profile(profile)
    lib = asset_library(assets, profile)  # loaded here first: a bad folder stops before any frame
    size = _check_size(size)
    if num_train is not None or num_val is not None:
        if num is not None:
            raise ValueError("give either num or num_train / num_val, not both")
        num_train, num_val = int(num_train or 0), int(num_val or 0)
        if num_train < 0 or num_val < 0:
            raise ValueError(f"num_train and num_val must be >= 0, got {num_train}, {num_val}")
        num = num_train + num_val
    if num is None or num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    workers = default_workers() if workers is None else max(1, int(workers))
    out = Path(out)
    for folder in FOLDERS:
        (out / folder).mkdir(parents=True, exist_ok=True)
    K = kinect_intrinsics(size)
    info = camera_info(size, K, profile, seed, lib)
    # Resume: a folder whose camera.json says the same size, profile and seed holds frames of this very run (an
    # interrupted one: the split files are written last); frames with all their files are kept, the rest rendered.
    try:
        same = json.loads((out / "camera.json").read_text()) == json.loads(json.dumps(info))
    except (OSError, ValueError):
        same = False
    atomic_write_bytes(out / "camera.json", json.dumps(info, indent=2).encode())
    todo = [i for i in range(num) if not (same and frame_complete(out, frame_name(i)))]

    jobs = [(str(out), int(seed), size, i, profile, None if assets is None else str(assets)) for i in todo]
    t0 = time.perf_counter()
    done, cpu = 0, 0.0
    if workers == 1:
        results = map(_render_and_write, jobs)
        pool = None
    else:
        # fresh worker processes: forking a process whose OpenCV / OpenMP thread pools are running can deadlock
        pool = ProcessPoolExecutor(max_workers=workers, initializer=limit_cv2_threads, mp_context=worker_context())
        results = pool.map(_render_and_write, jobs, chunksize=max(1, min(8, len(jobs) // (4 * workers))))
    if progress and len(todo) < num:
        print(f"  {num - len(todo)} of {num} frames already written by an interrupted run: kept", file=sys.stderr)
    try:
        for frame_cpu in results:
            cpu += frame_cpu
            done += 1
            if progress and (done % 50 == 0 or done == len(todo)):
                el = time.perf_counter() - t0
                print(f"  {done}/{len(todo)} frames, {done / el:.1f} frames/s", file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            pool.shutdown()
    seconds = time.perf_counter() - t0

    train, val = split_names(num, val_fraction, num_val)  # written last: an interrupted run lists no missing frame
    atomic_write_bytes(out / "gt_sets" / "train.txt", "".join(f"{n}\n" for n in train).encode())
    atomic_write_bytes(out / "gt_sets" / "val.txt", "".join(f"{n}\n" for n in val).encode())
    rendered = max(len(todo), 1)
    return {"out": str(out), "num": num, "train": len(train), "val": len(val), "size": list(size), "seed": seed,
            "profile": profile, "assets": None if lib is None else lib.name, "workers": workers,
            "rendered": len(todo), "kept": num - len(todo),
            "seconds": seconds, "frames_per_second": rendered / seconds, "cpu_seconds_per_frame": cpu / rendered}


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        return _check_size((h, w))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW with sides >= 8 (e.g. 480x640), got {text!r}") from None


def assets_main(argv: Sequence[str]) -> int:
    """``mtlsi-synth assets DIR``: check an asset folder and write its index."""
    ap = argparse.ArgumentParser(prog="mtlsi-synth assets",
                                 description="Check a folder of furniture meshes (OBJ / glTF; SweetHome3D's catalogue "
                                             "sizes), photo textures (in folders named 'textures') and HDR panoramas, "
                                             "and write what is usable to DIR/asset_index.json.")
    ap.add_argument("folder", help="the asset folder")
    ap.add_argument("--out", default=None, help="index file (default: FOLDER/asset_index.json)")
    args = ap.parse_args(argv)
    try:
        index = index_assets(args.folder)
    except AssetError as e:
        print(f"mtlsi-synth assets: {e}", file=sys.stderr)
        return 2
    for err in index.errors:
        print(f"error: {err['error']}", file=sys.stderr)
    path = write_index(index, args.out)
    print(f"{index.summary()}\nwrote {path}")
    return 0 if (index.meshes or index.textures or index.environments) else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["assets"]:
        return assets_main(argv[1:])
    ap = argparse.ArgumentParser(prog="mtlsi-synth", description=__doc__.split("\n\n")[0],
                                 epilog="mtlsi-synth assets DIR: check an asset folder and write its index.")
    ap.add_argument("--out", required=True, help="output folder (NYUD-MT layout)")
    ap.add_argument("--num", type=int, required=True, help="number of frames")
    ap.add_argument("--seed", type=int, default=0, help="data set seed (frame i depends only on seed and i)")
    ap.add_argument("--size", type=parse_size, default=DEFAULT_SIZE, help="HxW, e.g. 480x640 or 240x320")
    ap.add_argument("--val-fraction", type=float, default=0.1, help="share of frames listed in gt_sets/val.txt")
    ap.add_argument("--workers", type=int, default=None, help="processes (default: available cores)")
    ap.add_argument("--profile", choices=PROFILES, default="basic",
                    help="generator: basic (the original rooms, byte for byte) or nyud (NYUDv2-like room types, "
                         "cast shadows, ambient occlusion, real-surface textures, a camera model; slower)")
    ap.add_argument("--assets", default=None,
                    help="nyud profile: furniture meshes, photo textures and HDR light from this folder (indexed by "
                         "`mtlsi-synth assets DIR`), or 'builtin' (a small procedural mesh set, no download)")
    args = ap.parse_args(argv)
    if args.assets is not None and args.profile != "nyud":
        ap.error("--assets needs --profile nyud")
    if args.num < 1:
        ap.error("--num must be >= 1")
    if args.seed < 0:
        ap.error("--seed must be >= 0")
    if not 0.0 <= args.val_fraction < 1.0:
        ap.error("--val-fraction must be in [0, 1)")
    try:
        summary = write_dataset(args.out, args.num, args.seed, args.size, args.val_fraction, args.workers,
                                progress=True, profile=args.profile, assets=args.assets)
    except AssetError as e:
        ap.error(str(e))
    print(f"wrote {summary['num']} frames ({summary['train']} train, {summary['val']} val, profile {args.profile}) at "
          f"{summary['size'][0]}x{summary['size'][1]} to {summary['out']} in {summary['seconds']:.1f} s "
          f"({summary['frames_per_second']:.1f} frames/s, {summary['workers']} workers)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
