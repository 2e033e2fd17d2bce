"""The machine description saved with every benchmark result."""
import os

from mtlsi_core.tools.machine import describe, summary


def test_describe_names_cpu_cores_memory_and_versions():
    info = describe("cpu", note="x")
    assert info["logical_cpus"] == os.cpu_count()
    assert info["memory_gib"] > 0 and info["device"] == "cpu" and info["note"] == "x"
    assert info["torch"] and len(info["load_average_at_start"]) == 3


def test_summary_is_one_line_with_the_figures_that_matter():
    info = {"cpu_model": "AMD EPYC", "physical_cores": 2, "logical_cpus": 2, "memory_gib": 23.5,
            "torch": "2.13.0+cpu", "torch_threads": 2, "onnxruntime": "1.32.0", "load_average_at_start": [0.1, 0, 0],
            "gpu": "NVIDIA H100", "gpu_memory_gib": 79.1, "cuda": "12.8"}
    line = summary(info)
    assert "\n" not in line
    for part in ("AMD EPYC", "2 cores", "23.5 GiB", "NVIDIA H100", "torch 2.13.0+cpu (2 threads)",
                 "onnxruntime 1.32.0", "load average at start 0.1"):
        assert part in line
    assert "NVIDIA" not in summary({k: v for k, v in info.items() if k != "gpu"})
