"""``ttdnet features --backbone dreamsim:<variant>``: tiny random towers saved in DreamSim's checkpoint layout.

The reference embedding is computed here from the towers with their LoRA adapter active (PEFT, unmerged) and
DreamSim's documented preprocessing (224 x 224 bicubic resize, [0, 1], per-tower normalisation).
"""

from functools import partial

import pytest
import torch
from PIL import Image
from things_files import write_image_set
from torch import nn

from ttdnet.cli import available_commands, build_parser
from ttdnet.errors import TtdnetError
from ttdnet.stages.feature_file import read_feature_file
from ttdnet.stages.retrieval_features import run_features


WIDTH, PROJECTED = 128, 16  # 2 heads of 64, as DreamSim's ViT-B towers have 12 heads of 64
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    write_image_set(root / "image_set")
    return root


def config(image_set, tmp_path, *args):
    command = available_commands()["features"]
    parsed, _ = build_parser(command).parse_config(
        ["--image_dir", str(image_set), "--output_dir", str(tmp_path / "features"), *args]
    )
    return parsed


def tiny_tower(clip_layout: bool, quick_gelu: bool) -> nn.Module:
    """A 2-block ViT with patch 32 in the DINO layout; CLIP layout adds a LayerNorm after the position embedding."""
    from timm.models.vision_transformer import VisionTransformer

    eps = 1e-5 if clip_layout else 1e-6
    activation = "quick_gelu" if quick_gelu else None
    vit = VisionTransformer(img_size=224, patch_size=32, num_classes=0, embed_dim=WIDTH, depth=2, num_heads=2,
                            norm_layer=partial(nn.LayerNorm, eps=eps), act_layer=activation)  # fmt: skip
    if clip_layout:
        vit.norm_pre = nn.LayerNorm(WIDTH, eps=eps)
    with torch.no_grad():
        for parameter in vit.parameters():  # LayerNorms away from (1, 0), so a misplaced norm changes the output
            parameter.add_(0.1 * torch.randn_like(parameter))
    return vit.eval()


def write_ensemble_checkpoint(root):
    """DreamSim's ensemble folder: DINO hub weights, CLIP / OpenCLIP towers with ``proj`` and ``ensemble_lora``.

    Returns the towers (LoRA active through PEFT) and their projections, for the reference.
    """
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    dino, clip, open_clip = tiny_tower(False, False), tiny_tower(True, True), tiny_tower(True, False)
    (root / "checkpoints").mkdir(parents=True)
    torch.save(dino.state_dict(), root / "checkpoints" / "dino_vitbase16_pretrain.pth")
    projections = {}
    for name, vit in (("clip_vitb16", clip), ("open_clip_vitb16", open_clip)):
        state = {key.replace("norm_pre.", "pos_drop."): value for key, value in vit.state_dict().items()}
        projections[name] = state["proj"] = torch.randn(WIDTH, PROJECTED)
        torch.save({"state_dict": state}, root / f"{name}_pretrain.pth.tar")
    dreamsim_layout = nn.Module()
    dreamsim_layout.extractor_list = nn.ModuleList()
    for vit in (dino, clip, open_clip):
        extractor = nn.Module()
        extractor.model = vit
        dreamsim_layout.extractor_list.append(extractor)
    adapted = get_peft_model(dreamsim_layout, LoraConfig(r=4, lora_alpha=8, target_modules=["qkv"]))
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:  # PEFT starts B at zero, which would make the adapter a no-op
                parameter.normal_(std=0.2)
    adapted.save_pretrained(root / "ensemble_lora")
    return adapted.eval(), (dino, clip, open_clip), projections


def reference_embedding(images, towers, projections):
    """DreamSim's ``embed`` (normalize_embeds=True) of a list of PIL images, computed directly."""
    from torchvision import transforms

    resize = transforms.Compose([transforms.Resize((224, 224), interpolation=transforms.InterpolationMode.BICUBIC),
                                 transforms.ToTensor()])  # fmt: skip
    batch = torch.stack([resize(image) for image in images])
    dino, clip, open_clip = towers
    last_block = {}
    dino.blocks[-1].register_forward_hook(lambda _m, _i, out: last_block.update(out=out))
    with torch.no_grad():
        dino(transforms.Normalize(*IMAGENET)(batch))
        parts = [last_block["out"][:, 0]]  # CLS token of the last block, before the final norm
        for name, vit in (("clip_vitb16", clip), ("open_clip_vitb16", open_clip)):
            parts.append(vit(transforms.Normalize(*CLIP)(batch)) @ projections[name])
    embedding = torch.cat(parts, dim=1)
    embedding = embedding - embedding.mean(dim=1, keepdim=True)
    return embedding / embedding.norm(dim=1, keepdim=True), batch


def test_dreamsim_ensemble_embedding_and_intermediate_layer(image_set, tmp_path):
    folder = tmp_path / "dreamsim"
    adapted, towers, projections = write_ensemble_checkpoint(folder)
    args = [
        "--backbone",
        "dreamsim:ensemble",
        "--checkpoint",
        str(folder),
        "--layers",
        "clip_vitb16.blocks.0",
        "final",
    ]
    loaded = read_feature_file(run_features(config(image_set, tmp_path, *args))["output"])
    assert run_features(config(image_set, tmp_path, *args))["reused"]  # the settings are stable across runs
    assert loaded.layer_dims == [WIDTH, WIDTH + 2 * PROJECTED]
    assert set(loaded.settings["weights"]["weights"]) == {
        "checkpoints/dino_vitbase16_pretrain.pth", "clip_vitb16_pretrain.pth.tar", "open_clip_vitb16_pretrain.pth.tar",
        "ensemble_lora/adapter_config.json", "ensemble_lora/adapter_model.safetensors",
    }  # fmt: skip
    images = [Image.open(image_set / "image_set" / path).convert("RGB") for path in loaded.paths["test"]]
    expected, batch = reference_embedding(images, towers, projections)
    torch.testing.assert_close(loaded.features["test"][:, 1].float(), expected.half().float(), rtol=0, atol=2e-3)
    block = {}
    towers[1].blocks[0].register_forward_hook(lambda _m, _i, out: block.update(out=out))
    from torchvision import transforms

    with torch.no_grad():
        towers[1](transforms.Normalize(*CLIP)(batch))
    torch.testing.assert_close(loaded.features["test"][:, 0, :WIDTH].float(), block["out"].mean(dim=1).half().float(),
                               rtol=2e-3, atol=2e-3)  # fmt: skip


def test_dreamsim_without_local_weights_names_the_files_to_fetch(image_set, tmp_path):
    with pytest.raises(TtdnetError, match=r"give --checkpoint FOLDER.*checkpoints/dino_vitbase16_pretrain.pth "
                                          r"\(from https://dl.fbaipublicfiles.com/dino/.*ensemble_lora"):  # fmt: skip
        run_features(config(image_set, tmp_path, "--backbone", "dreamsim:ensemble"))
    folder = tmp_path / "partial"
    (folder / "clip_vitb32_single_lora").mkdir(parents=True)
    release = r"https://github.com/ssundaram21/dreamsim/releases/.*dreamsim_clip_vitb32_checkpoint.zip"
    with pytest.raises(
        TtdnetError, match=rf"missing .*clip_vitb32_pretrain.pth.tar, .*adapter_config.json.* \(from {release}"
    ):
        run_features(config(image_set, tmp_path, "--backbone", "dreamsim:clip_vitb32", "--checkpoint", str(folder)))
    with pytest.raises(TtdnetError, match=r"unknown variant; use one of \['ensemble', 'dino_vitb16'"):
        run_features(config(image_set, tmp_path, "--backbone", "dreamsim:vit_huge"))
