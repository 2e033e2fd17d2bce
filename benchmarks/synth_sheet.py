#!/usr/bin/env python3
"""Contact sheet of synthetic frames: image | semantic labels | depth | normals | boundaries, one frame per row,
for looking at a generator profile (synthetic pixels only).

    python benchmarks/synth_sheet.py          # 12 nyud frames at 240x320 -> benchmarks/results/synth_nyud_sheet.png
    python benchmarks/synth_sheet.py --profile basic --frames 6 --out /tmp/basic_sheet.png

Frames are ``render_scene(frame_seed(seed, i), profile=...)``, i.e. frame i of ``mtlsi-synth --seed seed``; the
room type of each nyud frame is printed. The PNG is written atomically.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mtlsi_core.data import synth  # noqa: E402
from mtlsi_core.viz import colorize_depth, colorize_labels, colorize_normals  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=synth.PROFILES, default="nyud")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=synth.parse_size, default=(240, 320))
    ap.add_argument("--scale", type=float, default=0.5, help="tile scale in the sheet")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.frames < 1:
        ap.error("--frames must be >= 1")
    out = args.out or REPO / "benchmarks" / "results" / f"synth_{args.profile}_sheet.png"
    rows = []
    for i in range(args.frames):
        seed = synth.frame_seed(args.seed, i)
        f = synth.render_scene(seed, args.size, profile=args.profile)
        if args.profile == "nyud":
            from mtlsi_core.data.rooms import sample_room

            print(f"frame {i}: {sample_room(np.random.default_rng(seed)).room_type}")
        tiles = [f.image, colorize_labels(f.semseg), colorize_depth(f.depth, 0.5, 8.0), colorize_normals(f.normals),
                 np.repeat(f.edge[..., None] * np.uint8(255), 3, axis=-1)]
        rows.append(np.concatenate([cv2.resize(t, None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_AREA)
                                    for t in tiles], axis=1))
    sheet = np.concatenate(rows, axis=0)
    ok, buf = cv2.imencode(".png", sheet[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, out)
    print(f"wrote {out} ({len(buf) / 2**20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
