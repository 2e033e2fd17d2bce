"""The model traces whole (torch.compile fullgraph) and exports to ONNX at a static size."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mtlsi_core.config import load_config
from mtlsi_core.models import build_model

TINY = Path(__file__).resolve().parent / "configs" / "tiny.yaml"


class _Final(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)["final"]
        return tuple(out[t] for t in self.model.tasks)


@pytest.mark.slow
def test_dynamo_captures_the_whole_forward_without_graph_breaks():
    torch._dynamo.reset()
    # CWIB windows that need padding exercise the masked path too
    cfg = load_config(TINY, ["model.cwib.window=[14,16]"])
    model = build_model(cfg).eval()
    x = torch.randn(1, 3, *cfg.data.input_size)
    compiled = torch.compile(model, fullgraph=True, backend="eager", dynamic=False)
    with torch.no_grad():
        ref, got = model(x), compiled(x)
    for t in cfg.data.tasks:
        torch.testing.assert_close(got["final"][t], ref["final"][t])


@pytest.mark.slow
def test_onnx_export_matches_torch():
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    cfg = load_config(TINY)
    model = _Final(build_model(cfg)).eval()
    x = torch.randn(1, 3, *cfg.data.input_size)
    prog = torch.onnx.export(model, (x,), dynamo=True, opset_version=18)
    sess = ort.InferenceSession(prog.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        ref = model(x)
    for a, b in zip(ref, out):
        np.testing.assert_allclose(a.numpy(), b, atol=1e-4, rtol=1e-4)
