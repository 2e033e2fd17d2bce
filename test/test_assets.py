"""Real assets in the synthetic rooms (issue 20, item 1): meshes keep the ground truth exact, the asset index checks
a folder file by file, photo textures and HDR light reach the image, and the generator runs with the built-in set."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mtlsi_core.data import rooms, synth
from mtlsi_core.data.assets import (INDEX_NAME, MeshPrimitive, MeshShape, asset_type, builtin_library,
                                    index_assets, load_library)
from mtlsi_core.data.assets.catalog import read_sweethome3d_catalog
from mtlsi_core.data.render.lighting import sh_environment, sh_irradiance
from mtlsi_core.data.render.textures import PhotoMaterial, albedo
from synth_helpers import expected_boundaries

SIZE = (60, 80)
CUBE_OBJ = """# a unit cube, y up
v -0.5 0 -0.5\nv 0.5 0 -0.5\nv 0.5 0 0.5\nv -0.5 0 0.5\nv -0.5 1 -0.5\nv 0.5 1 -0.5\nv 0.5 1 0.5\nv -0.5 1 0.5
g box
f 1 3 2\nf 1 4 3\nf 5 6 7\nf 5 7 8\nf 1 2 6\nf 1 6 5\nf 2 3 7\nf 2 7 6\nf 3 4 8\nf 3 8 7\nf 4 1 5\nf 4 5 8
"""
CATALOG = """id#1=x#table
name#1=Square table
category#1=Living room
model#1=/com/eteks/sweethome3d/io/resources/squareTable.obj
width#1=120
depth#1=80
height#1=74
doorOrWindow#1=false

name#2=Door
model#2=/com/eteks/sweethome3d/io/resources/door.obj
width#2=90
depth#2=10
height#2=210
doorOrWindow#2=true
"""


def _rays(K: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones((h, w))], axis=-1)


def test_a_mesh_casts_exact_depth_and_normals():
    """A cube as a mesh and as the analytic box give the same depth, and the mesh's normals are the face normals."""
    v = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.4, 0.4) for z in (-0.3, 0.3)], np.float32)
    import trimesh

    hull = trimesh.Trimesh(v).convex_hull
    # plus triangles without area (real files have them: they have no normal and must not give one)
    faces = np.concatenate([hull.faces, [[0, 0, 1], [0, 1, 1], [2, 2, 2]]])
    mesh = MeshPrimitive(center=np.array([3.0, 0.2, 0.5]), yaw=0.4, shape=MeshShape(hull.vertices, faces))
    box = rooms.Box(center=np.array([3.0, 0.2, 0.5]), yaw=0.4, half=np.array([0.5, 0.4, 0.3]))
    o = np.array([0.0, 0.0, 0.77])  # not in the plane of the top face (grazing rays are a tie)
    g = np.linspace(-0.4, 0.4, 41, dtype=np.float32)
    d = (np.ones((41, 41), np.float32), g[None, :].repeat(41, 0), -g[:, None].repeat(41, 1))
    tm, fm = mesh.intersect(o, d)
    tb, fb = box.intersect(o, d)
    hit = np.isfinite(tb)
    assert hit.sum() > 200 and np.array_equal(hit, np.isfinite(tm))
    assert np.abs(tm[hit] - tb[hit]).max() < 1e-4
    assert np.array_equal(fm[hit], fb[hit])  # the dominant axis of a box's triangle is its face code
    P = [o[i] + tm[hit] * d[i][hit] for i in range(3)]
    nm = np.stack(mesh.curved_normals(*P, fm[hit]), -1)
    nb = box.face_normals_world()[fb[hit]]
    assert np.abs(nm - nb).max() < 1e-5
    corners = [np.asarray(mesh.center + rooms.rot_z(0.4) @ c)[None] for c in v.astype(np.float64)]
    at_corners = np.stack(mesh.curved_normals(*(np.concatenate(corners)[:, i] for i in range(3)), None), -1)
    assert np.allclose(np.linalg.norm(at_corners, axis=-1), 1.0, atol=1e-5)  # a vertex still has a unit normal


@pytest.fixture(scope="module")
def builtin_frames():
    lib = builtin_library()
    out = []
    for seed in range(6):
        rng = np.random.default_rng(seed)
        scene = rooms.sample_room(rng, assets=lib)
        frame = synth.render_nyud(scene, synth.kinect_intrinsics(SIZE), SIZE, rng)
        out.append((scene, frame))
    return out


def test_mesh_rooms_keep_the_ground_truth_exact(builtin_frames):
    """Every pixel of a mesh object back-projects onto that mesh; labels, normals and boundaries as for primitives."""
    seen = 0
    for scene, f in builtin_frames:
        assert np.array_equal(f.semseg, np.array(scene.labels, np.uint8)[f.instance])
        assert np.allclose(np.linalg.norm(f.normals, axis=-1), 1.0, atol=1e-4)
        assert np.einsum("hwc,hwc->hw", f.normals, _rays(f.K, f.depth.shape)).max() <= 1e-5
        assert np.array_equal(f.edge.astype(bool), expected_boundaries(f.instance, f.depth))
        P = (_rays(f.K, f.depth.shape) * f.depth[..., None]).reshape(-1, 3) @ scene.R_wc.T + scene.cam_pos
        inst = f.instance.ravel()
        for obj in np.unique(inst):
            prims = [p.prim for p in scene.parts if p.obj == obj]
            if not prims or not all(isinstance(p, MeshPrimitive) for p in prims):
                continue
            pts = P[inst == obj]
            dist = np.min([p.surface_distance(pts) for p in prims], axis=0)
            assert dist.max() < 3e-3, (obj, dist.max())
            seen += 1
    assert seen >= 3  # the built-in meshes are in view in these rooms


def test_mesh_normals_are_the_triangles_normals(builtin_frames):
    for scene, f in builtin_frames:
        for part in scene.parts:
            if not isinstance(part.prim, MeshPrimitive):
                continue
            m = (f.instance == part.obj)
            if m.sum() < 20:
                continue
            P = (_rays(f.K, f.depth.shape) * f.depth[..., None])[m] @ scene.R_wc.T + scene.cam_pos
            n_world = f.normals[m] @ scene.R_wc.T
            # a step along the surface normal leaves the surface by that step (the normal is the surface's)
            prims = [p.prim for p in scene.parts if p.obj == part.obj]
            off = P + 0.01 * n_world
            dist = np.min([p.surface_distance(off) for p in prims], axis=0)
            assert np.median(dist) > 0.008
            return
    pytest.fail("no mesh object in view")


def test_the_rooms_without_assets_are_unchanged():
    """assets=None draws nothing more: the nyud profile's frames are those of before."""
    a = synth.render_scene(3, SIZE, profile="nyud")
    b = synth.render_scene(3, SIZE, profile="nyud", assets=None)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.semseg, b.semseg)


def _asset_folder(root: Path) -> Path:
    (root / "furniture").mkdir(parents=True)
    (root / "furniture" / "squareTable.obj").write_text(CUBE_OBJ)
    (root / "furniture" / "door.obj").write_text(CUBE_OBJ)
    (root / "furniture" / "broken_chair.obj").write_text("v 1 2\nf 1 2 3 x\nthis is not a mesh\n")
    (root / "furniture" / "DefaultFurnitureCatalog.properties").write_text(CATALOG)
    (root / "loose" / "textures").mkdir(parents=True)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(root / "loose" / "textures" / "light-wood.png"), rng.integers(0, 255, (96, 96, 3), np.uint8))
    cv2.imwrite(str(root / "loose" / "textures" / "oak_nor_gl_1k.png"), rng.integers(0, 255, (96, 96, 3), np.uint8))
    cv2.imwrite(str(root / "loose" / "textures" / "metal.png"), rng.integers(0, 255, (96, 96, 3), np.uint8))
    (root / "loose" / "textures" / "gray-plaster.png").write_bytes(b"\x89PNG not really")
    (root / "hdri").mkdir()
    pano = np.full((32, 64, 3), 0.5, np.float32)
    pano[:8] = 4.0  # a bright sky / ceiling
    cv2.imwrite(str(root / "hdri" / "room_1k.hdr"), pano)
    (root / "hdri" / "bad_1k.hdr").write_bytes(b"#?RADIANCE\nnonsense")
    return root


def test_asset_index_checks_every_file_and_keeps_the_rest(tmp_path, capsys):
    root = _asset_folder(tmp_path / "assets")
    assert synth.main(["assets", str(root)]) == 0
    err = capsys.readouterr().err.splitlines()
    index = json.loads((root / INDEX_NAME).read_text())
    assert [m["file"] for m in index["meshes"]] == ["furniture/squareTable.obj"]
    table = index["meshes"][0]
    assert table["type"] == "table" and table["size"] == pytest.approx([1.2, 0.8, 0.74])  # the catalogue's cm
    # no normal map; a texture named like a PBR map's suffix alone is a texture
    assert [t["file"] for t in index["textures"]] == ["loose/textures/light-wood.png", "loose/textures/metal.png"]
    assert [e["file"] for e in index["environments"]] == ["hdri/room_1k.hdr"]
    bad = {e["file"] for e in index["errors"]}
    assert bad == {"furniture/broken_chair.obj", "loose/textures/gray-plaster.png", "hdri/bad_1k.hdr"}
    for name in bad:  # one line naming each bad file
        assert sum(Path(name).name in line for line in err) == 1
    assert any(u["file"] == "furniture/door.obj" for u in index["unused"])  # doors stay procedural wall items
    # the library loads what the index lists, scaled to the catalogue
    lib = load_library(str(root))
    (table_asset,) = lib.meshes["table"]
    verts = np.concatenate([s.vertices + off for s, off, _ in table_asset.parts])
    assert np.allclose(verts.max(0) - verts.min(0), [1.2, 0.8, 0.74], atol=1e-5)
    assert abs(verts[:, 2].min()) < 1e-6  # stands on the floor
    assert lib.textures["floor"] and lib.environments
    frame = synth.render_scene(1, SIZE, profile="nyud", assets=str(root))
    assert frame.image.shape == SIZE + (3,)


def test_asset_index_errors(tmp_path):
    assert synth.main(["assets", str(tmp_path / "nowhere")]) == 2
    (tmp_path / "empty").mkdir()
    assert synth.main(["assets", str(tmp_path / "empty")]) == 1
    with pytest.raises(SystemExit):
        synth.main(["--out", str(tmp_path / "o"), "--num", "1", "--assets", "builtin"])  # basic profile: refused
    with pytest.raises(ValueError, match="nyud"):
        synth.render_scene(0, SIZE, profile="basic", assets="builtin")


def test_catalogue_rules():
    assert asset_type("Bed 140x190") == "bed" and asset_type("Bedside table") == "night stand"
    assert asset_type("Kitchen upper cabinet") == "wall cabinet" and asset_type("Coffee table") == "coffee table"
    assert asset_type("wooden_bookshelf_worn_1k") == "bookshelf" and asset_type("Pendant lamp") is None
    assert asset_type("tea_set_01_1k") is None


def test_sweethome3d_catalogue_reader(tmp_path):
    p = tmp_path / "DefaultFurnitureCatalog.properties"
    p.write_text(CATALOG)
    cat = read_sweethome3d_catalog(p)
    assert cat["squareTable.obj"]["size"] == pytest.approx((1.2, 0.8, 0.74))
    assert cat["door.obj"]["door_or_window"]


def test_environment_light_from_a_panorama():
    uniform = np.full((16, 32, 3), 0.3, np.float32)
    n = [np.array([[0.0, 1.0]], np.float32), np.array([[0.0, 0.0]], np.float32), np.array([[1.0, 0.0]], np.float32)]
    assert np.allclose(sh_irradiance(sh_environment(uniform), n), 0.3, atol=0.01)  # white surface: the radiance
    sky = np.zeros((16, 32, 3), np.float32)
    sky[:4] = 1.0  # light from above only
    e = sh_irradiance(sh_environment(sky), [np.array([0.0, 0.0]), np.array([0.0, 0.0]), np.array([1.0, -1.0])])
    assert e[0].mean() > 5 * max(e[1].mean(), 1e-3)  # up-facing surfaces lit, down-facing ones nearly not


def test_photo_texture_albedo():
    img = np.zeros((256, 256, 3), np.float32)
    img[:, :128] = 0.8
    mat = PhotoMaterial("photo", np.ones(3, np.float32), np.ones(3, np.float32), 1.0, 0.0, image=img)
    a = albedo(mat, np.array([0.1, 0.6]), np.array([0.2, 0.2]))
    assert np.allclose(a[0], 0.8) and np.allclose(a[1], 0.0)


def test_dataset_with_builtin_assets_records_them(tmp_path):
    out = tmp_path / "set"
    summary = synth.write_dataset(out, 2, size=(48, 64), workers=1, profile="nyud", assets="builtin")
    info = json.loads((out / "camera.json").read_text())
    assert info["assets"]["name"] == "builtin" and len(info["assets"]["digest"]) == 16
    assert summary["assets"] == "builtin" and summary["rendered"] == 2
