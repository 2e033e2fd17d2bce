"""Shared code of the bag tests (test_bag_*.py): a small synthetic set, bags made from it, a tiny checkpoint whose
depth depends on the camera's focal length, and reading a bag back as {(topic, stamp): message}. Imported as a
plain module (the test folder is on sys.path)."""
from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from node_helpers import TINY_CONFIG

SIZE = (96, 128)  # (H, W) of the synthetic frames; the tiny network runs at 64x96
CANONICAL_FOCAL = 80.0  # px: the tiny "focal" model's training camera (the synthetic frames have fx ~ 104 px)

_CACHE: dict[str, Path] = {}


def _tmp(prefix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def synth_set(num: int = 4, seed: int = 5) -> Path:
    """A synthetic NYUD-MT-layout set of ``num`` val frames at ``SIZE`` (built once per test process)."""
    key = f"synth_{num}_{seed}"
    if key not in _CACHE:
        from mtlsi_core.data.synth import write_dataset

        root = _tmp("mtlsi_bag_synth_") / "synth"
        write_dataset(root, num_train=0, num_val=num, seed=seed, size=SIZE, workers=1)
        _CACHE[key] = root
    return _CACHE[key]


def focal_checkpoint() -> Path:
    """The tiny test model (random weights) with ``data.canonical_focal`` set, so that the focal length passed to
    the runtime changes its depth output (built once per test process)."""
    if "focal_ckpt" not in _CACHE:
        import torch

        from mtlsi_core.checkpoint import atomic_torch_save, make_checkpoint
        from mtlsi_core.config import load_config
        from mtlsi_core.models import build_model

        torch.manual_seed(1)
        cfg = load_config(TINY_CONFIG, [f"data.canonical_focal={CANONICAL_FOCAL}"])
        model = build_model(cfg)
        path = _tmp("mtlsi_bag_ckpt_") / "tiny_focal.pt"
        atomic_torch_save(make_checkpoint(model.state_dict(), cfg.to_dict(), meta={"note": "random weights (tests)"}),
                          path)
        _CACHE["focal_ckpt"] = path
    return _CACHE["focal_ckpt"]


def make_synth_bag(out: Path, num: int = 4, **options: Any) -> Path:
    """``mtlsi-bag make`` of the synthetic set's val split into ``out``."""
    from mtlsi_ros.bag.make import MakeOptions, make_bag
    from mtlsi_ros.bag.sources import dataset_source

    make_bag(out, dataset_source(synth_set(num), "val"), MakeOptions(progress=False, **options))
    return out


def read_bag(path: Path, topics: Any = None) -> dict[tuple[str, int], tuple[bytes, Any]]:
    """{(topic, header stamp ns): (CDR bytes, message)}; duplicates are an error."""
    from mtlsi_ros.bag.storage import BagReader

    out: dict[tuple[str, int], tuple[bytes, Any]] = {}
    with BagReader(path) as bag:
        for raw in bag.messages(topics):
            msg = bag.deserialize(raw)
            key = (raw.topic, int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec))
            assert key not in out, f"{path}: {key} twice"
            out[key] = (raw.data, msg)
    return out


def live_and_offline(tmp_path: Path, bag: Path, params: dict, topics: list[str], frames: int, test_name: str,
                     camera: str = "/camera") -> tuple[Path, Path, Any, str]:
    """Play ``bag`` with /clock to the installed node (own process, real DDS, ``params``), record ``topics`` until
    ``frames`` of each arrived, then run ``mtlsi-bag infer`` on the same bag with the same parameter files. Returns
    (live bag, offline bag, infer summary, node log)."""
    import time

    from mtlsi_ros.bag.infer import InferOptions, run_infer
    from mtlsi_ros.bag.live import BagPlayer, BagRecorder
    from mtlsi_ros.bag.node_params import load_node_params
    from node_helpers import PARAMS_FILE, NodeProcess, RosSide, domain_id, write_params

    overrides = write_params(tmp_path / "overrides.yaml", params)
    dom = domain_id(test_name)
    node = NodeProcess(tmp_path, dom, params, namespace=camera, name="perception")
    ros = None
    try:
        node.wait_log(r"active: subscribed", timeout=180)
        ros = RosSide(dom)
        recorder = BagRecorder(tmp_path / "live.mcap", topics, context=ros.context)
        try:
            recorder.wait_ready(60)
            with BagPlayer(bag, context=ros.context, rate=1.0, clock=True,
                           topics=[f"{camera}/image", f"{camera}/camera_info"]) as player:
                player.wait_for_subscribers(timeout=60)
                time.sleep(1.0)  # the node's publishers see the recorder's subscriptions (it skips unwatched ones)
                player.play()
                recorder.wait_for_counts({t: frames for t in topics}, timeout=120)
        except BaseException:
            recorder.abort()
            raise
        live_path = recorder.close()
        assert not recorder.errors, recorder.errors
    finally:
        node.stop()
        if ros is not None:
            ros.close()
    log = node.log()
    p = load_node_params([PARAMS_FILE, overrides], node_fqn=f"{camera}/perception")
    summary = run_infer(bag, tmp_path / "offline.mcap", p, InferOptions(copy_input=False, progress=False))
    return live_path, tmp_path / "offline.mcap", summary, log
