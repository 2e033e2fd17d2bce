"""mtlsi-export end to end on the tiny config, and its errors."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from mtlsi_core.runtime import create_runtime
from mtlsi_core.runtime.export import read_onnx_meta
from mtlsi_core.runtime.tensorrt_runtime import tensorrt_version
from mtlsi_core.tools.export import main
from runtime_helpers import TINY, images, tiny_checkpoint


def test_cli_exports_a_checkpoint_that_the_onnx_runtime_loads(tmp_path, capsys):
    ckpt = tmp_path / "run" / "best.pt"
    ckpt.parent.mkdir()
    shutil.copy(tiny_checkpoint(), ckpt)
    rc = main(["--config", str(TINY), "--checkpoint", str(ckpt), "--format", "onnx", "--exporter", "torchscript"])
    out = capsys.readouterr().out
    assert rc == 0, out
    onnx_path = tmp_path / "run" / "best.onnx"
    assert f"wrote {onnx_path}" in out and "pixel agreement" in out and "FAIL" not in out
    assert read_onnx_meta(onnx_path).source["checkpoint"] == str(ckpt.resolve())
    rt = create_runtime("onnx", str(onnx_path))
    assert rt.infer(images([(120, 160)]))[0]["depth"].shape == (120, 160)


def test_cli_changes_the_input_size_and_writes_where_asked(tmp_path, capsys):
    target = tmp_path / "big.onnx"
    rc = main(["--checkpoint", str(tiny_checkpoint()), "--set", "data.input_size=[96,128]", "--output", str(target),
               "--exporter", "torchscript", "--no-verify", "--static-batch", "1", "-q"])
    assert rc == 0
    assert read_onnx_meta(target).input_size == (96, 128)
    assert create_runtime("onnx", str(target)).static_batch == 1


def test_cli_errors(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err
    assert main(["--checkpoint", str(tiny_checkpoint()), "--config", str(TINY), "--set", "model.embed_dim=48"]) == 2
    assert "model.embed_dim: checkpoint 32 vs config 48" in capsys.readouterr().err
    assert main(["--config", str(TINY)]) == 2
    assert "--checkpoint is required" in capsys.readouterr().err
    assert main(["--checkpoint", str(tiny_checkpoint()), "--output", str(tmp_path / "x.trt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(tiny_checkpoint()), "--format", "tflite"])


@pytest.mark.skipif(tensorrt_version() is not None, reason="TensorRT is installed here")
def test_cli_engine_without_tensorrt_writes_the_onnx_and_explains(tmp_path, capsys):
    target = tmp_path / "m.onnx"
    rc = main(["--random-init", "--config", str(TINY), "--output", str(target), "--format", "engine",
               "--exporter", "torchscript", "--no-verify", "-q"])
    err = capsys.readouterr().err
    assert rc == 3
    assert "TensorRT is not installed" in err and f"The ONNX file {target} was written" in err
    assert target.is_file() and not list(tmp_path.glob("*.engine"))
    assert read_onnx_meta(target).source == {"random_init": 0}


@pytest.mark.slow
def test_cli_default_exporter_as_a_subprocess(tmp_path):
    """`python -m mtlsi_core.tools.export` (the mtlsi-export entry point) with the default (dynamo) exporter."""
    ckpt = tmp_path / "m.pt"
    shutil.copy(tiny_checkpoint(), ckpt)
    proc = subprocess.run([sys.executable, "-m", "mtlsi_core.tools.export", "--checkpoint", str(ckpt),
                           "--config", str(TINY)],
                          capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dynamo exporter" in proc.stdout and "FAIL" not in proc.stdout
    assert read_onnx_meta(tmp_path / "m.onnx").exporter == "dynamo"
