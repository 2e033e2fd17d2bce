"""Real assets in the synthetic rooms: furniture meshes, photo textures and HDR light, read from a folder the user
points to (``mtlsi-synth assets DIR`` indexes it; ``mtlsi-synth --assets DIR`` renders with it).

``catalog`` maps asset names to the rooms' object types (and so to NYUDv2-40 classes) in one table and reads
SweetHome3D's catalogue sizes; ``library`` checks a folder (a broken file: one line naming it, the rest usable),
writes ``asset_index.json`` and loads meshes (trimesh), textures and panoramas; ``mesh`` puts a triangle mesh into
the analytic ray caster through Open3D's ``RaycastingScene`` (exact depth, normals, labels, boundaries);
``procedural`` is the built-in set that runs without any download. This package reads asset files and writes only
the index file it is asked to write; the rooms (``mtlsi_core.data.rooms``) decide where assets go, the renderer
(``mtlsi_core.data.render``) how they look. No asset is ever part of the repository.
"""
from mtlsi_core.data.assets.catalog import ASSET_TYPES, asset_type
from mtlsi_core.data.assets.library import (INDEX_NAME, AssetError, AssetIndex, AssetLibrary, builtin_library,
                                            index_assets, load_library, read_index, write_index)
from mtlsi_core.data.assets.mesh import MeshPrimitive, MeshShape

__all__ = ["ASSET_TYPES", "INDEX_NAME", "AssetError", "AssetIndex", "AssetLibrary", "MeshPrimitive", "MeshShape",
           "asset_type", "builtin_library", "index_assets", "load_library", "read_index", "write_index"]
