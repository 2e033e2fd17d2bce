#!/usr/bin/env python3
"""Time Blender Cycles (the ``bpy`` wheel from PyPI) on a room comparable to the synthetic generator's, to decide
between it and the numpy ray caster (benchmarks/synth_realism.py measures the caster's realism and speed).

bpy is not a project dependency: run this with a throwaway environment's Python, e.g.

    python3 -m venv /tmp/bpyvenv && /tmp/bpyvenv/bin/pip install bpy
    /tmp/bpyvenv/bin/python benchmarks/bench_cycles.py --threads 2 --out benchmarks/results/cycles_cpu.json

The scene: a 5 x 4 x 2.7 m room (6 planes), 120 boxes of furniture sizes on the floor and against the walls (about
the nyud profile's primitive count), 2 ceiling point lights and a window area light, a camera with the Kinect's
field of view; 240 x 320 pixels, Cycles on the CPU with ``--threads`` threads at a few sample counts (with and
without the OpenImageDenoise denoiser where the wheel has it). A render needs also the ground truth passes (depth,
normals, object index), which are requested as view layer passes, as a real generator would. Exits 0 with a
message when bpy cannot be imported.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path


def build_scene(bpy, rng: random.Random) -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    lx, ly, lz = 5.0, 4.0, 2.7

    def box(name, centre, size, colour):
        bpy.ops.mesh.primitive_cube_add(size=1.0, location=centre)
        ob = bpy.context.active_object
        ob.name = name
        ob.scale = size
        mat = bpy.data.materials.new(name + "_m")
        mat.use_nodes = True
        mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (*colour, 1.0)
        ob.data.materials.append(mat)
        return ob

    t = 0.05  # the room: six slabs
    slabs = (("floor", (lx / 2, ly / 2, -t / 2), (lx, ly, t)), ("ceil", (lx / 2, ly / 2, lz + t / 2), (lx, ly, t)),
             ("w0", (-t / 2, ly / 2, lz / 2), (t, ly, lz)), ("w1", (lx + t / 2, ly / 2, lz / 2), (t, ly, lz)),
             ("w2", (lx / 2, -t / 2, lz / 2), (lx, t, lz)), ("w3", (lx / 2, ly + t / 2, lz / 2), (lx, t, lz)))
    for name, c, s in slabs:
        box(name, c, s, (0.8, 0.78, 0.74))
    for i in range(120):
        w, d, h = rng.uniform(0.05, 1.2), rng.uniform(0.05, 0.8), rng.uniform(0.02, 1.8)
        x, y = rng.uniform(1.2, lx - 0.3), rng.uniform(0.3, ly - 0.3)
        box(f"b{i}", (x, y, h / 2), (w, d, h), (rng.random(), rng.random(), rng.random()))
    for x, y in ((1.8, 2.0), (3.6, 2.0)):
        bpy.ops.object.light_add(type="POINT", location=(x, y, lz - 0.1))
        bpy.context.active_object.data.energy = 300.0
    bpy.ops.object.light_add(type="AREA", location=(lx - 0.3, ly / 2, 1.6))
    area = bpy.context.active_object
    area.data.energy = 400.0
    area.data.size = 1.2
    area.rotation_euler = (0.0, -math.pi / 2, 0.0)
    bpy.ops.object.camera_add(location=(0.4, ly / 2, 1.35), rotation=(math.radians(80), 0.0, math.radians(-90)))
    cam = bpy.context.active_object
    cam.data.sensor_fit = "HORIZONTAL"
    cam.data.angle = 2 * math.atan(320 / (2 * 259.43))  # Kinect fx scaled to 320 px wide
    scene.camera = cam
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 320, 240, 100
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    layer = scene.view_layers[0]
    layer.use_pass_z = True
    layer.use_pass_normal = True
    layer.use_pass_object_index = True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--out", type=Path, default=None, help="JSON of the timings")
    args = ap.parse_args(argv)
    try:
        import bpy
    except ImportError as e:
        print(f"skipped: bpy cannot be imported ({e}); see the docstring for a throwaway environment")
        return 0
    build_scene(bpy, random.Random(0))
    scene = bpy.context.scene
    scene.render.threads_mode = "FIXED"
    scene.render.threads = args.threads
    results = []
    with tempfile.TemporaryDirectory(prefix="cycles_bench_") as tmp:
        for samples in args.samples:
            for denoise in (False, True):
                scene.cycles.samples = samples
                scene.cycles.use_denoising = denoise
                scene.render.filepath = os.path.join(tmp, f"r{samples}_{int(denoise)}.png")
                t0 = time.perf_counter()
                try:
                    bpy.ops.render.render(write_still=True)
                except RuntimeError as e:  # e.g. a wheel without OpenImageDenoise
                    results.append({"samples": samples, "denoise": denoise, "error": str(e)})
                    continue
                sec = time.perf_counter() - t0
                results.append({"samples": samples, "denoise": denoise, "seconds": round(sec, 2),
                                "load_average_after": [round(v, 2) for v in os.getloadavg()]})
                print(f"samples {samples} denoise {denoise}: {sec:.2f} s")
    doc = {"benchmark": "Blender Cycles on a comparable room, 240x320", "bpy": bpy.app.version_string,
           "threads": args.threads, "cpu": platform.processor() or platform.machine(),
           "python": platform.python_version(), "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
           "results": results}
    if args.out is not None:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
