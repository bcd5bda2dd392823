"""The Stage B conditioning models: sizes from the UNet config, the resampler's attention, null conditioning, CFG."""

import math

import pytest
import torch

from ttdnet.errors import ConfigError
from ttdnet.models import EEGConditioner, InceptSADEncoder, PerceiverResampler, conditioning_dims, encoder_preset
from ttdnet.models.registry import DEFAULT_SIGNAL, build_encoder, token_count
from ttdnet.models.tiny_sdxl import TINY_SDXL_PRESETS, build_tiny_sdxl


def tiny_conditioner(unet_config, clip_dim=None, seed=0) -> EEGConditioner:
    torch.manual_seed(seed)
    encoder = InceptSADEncoder(**encoder_preset("tiny"))
    cross, pooled = conditioning_dims(unet_config)
    return EEGConditioner("inceptsad", dict(encoder.config), cross, pooled, n_queries=3, resampler_dim=16,
                          resampler_depth=2, resampler_heads=2, clip_dim=clip_dim, clip_hidden_dim=8)  # fmt: skip


def test_conditioning_dims_of_sdxl():
    # SDXL base: cross_attention_dim 2048, 2816 = 1280 pooled + 6 x 256 time ids.
    config = {"addition_embed_type": "text_time", "cross_attention_dim": 2048,
              "projection_class_embeddings_input_dim": 2816, "addition_time_embed_dim": 256}  # fmt: skip
    assert conditioning_dims(config) == (2048, 1280)
    with pytest.raises(ConfigError, match="SDXL-style UNet"):
        conditioning_dims({**config, "addition_embed_type": None})


@pytest.mark.parametrize("preset", sorted(TINY_SDXL_PRESETS))
def test_shapes_follow_the_unet_config(preset):
    components = build_tiny_sdxl(preset)
    unet = components["unet"]
    expected_cross = TINY_SDXL_PRESETS[preset]["unet"]["cross_attention_dim"]
    expected_pooled = (TINY_SDXL_PRESETS[preset]["unet"]["projection_class_embeddings_input_dim"]
                       - 6 * TINY_SDXL_PRESETS[preset]["unet"]["addition_time_embed_dim"])  # fmt: skip
    conditioner = tiny_conditioner(unet.config)
    out = conditioner(torch.randn(2, 17, 100))
    assert out.encoder_hidden_states.shape == (2, 3, expected_cross)
    assert out.pooled.shape == (2, expected_pooled) and out.clip_embedding is None
    latents = torch.randn(2, 4, 32, 32)
    sample = unet(latents, torch.tensor([10, 500]), encoder_hidden_states=out.encoder_hidden_states,
                  added_cond_kwargs={"text_embeds": out.pooled, "time_ids": torch.ones(2, 6)}).sample  # fmt: skip
    assert sample.shape == latents.shape and torch.isfinite(sample).all()


def test_null_conditioning_replaces_dropped_samples_and_always_gets_a_gradient():
    conditioner = tiny_conditioner(build_tiny_sdxl("tiny")["unet"].config)
    with torch.no_grad():
        conditioner.null_tokens.normal_()
        conditioner.null_pooled.normal_()
    eeg = torch.randn(3, 17, 100)
    out = conditioner(eeg, drop=torch.tensor([True, False, True]))
    null_tokens, null_pooled = conditioner.null_conditioning(3)
    assert torch.equal(out.encoder_hidden_states[0], null_tokens[0]) and torch.equal(out.pooled[2], null_pooled[2])
    plain = conditioner(eeg)
    assert torch.equal(out.encoder_hidden_states[1], plain.encoder_hidden_states[1])
    assert not torch.allclose(plain.encoder_hidden_states[0], null_tokens[0])
    kept = conditioner(eeg, drop=torch.zeros(3, dtype=torch.bool))
    (kept.encoder_hidden_states.sum() + kept.pooled.sum()).backward()
    assert conditioner.null_tokens.grad is not None and torch.count_nonzero(conditioner.null_tokens.grad) == 0


def test_resampler_layer_matches_attention_over_tokens_and_latents_written_out():
    torch.manual_seed(0)
    resampler = PerceiverResampler(input_dim=5, n_input_tokens=4, output_dim=6, n_queries=2, dim=8, depth=1, heads=2)
    layer = resampler.layers[0]
    tokens, latents = torch.randn(1, 4, 8), torch.randn(1, 2, 8)
    with torch.no_grad():
        got = layer(tokens, latents)
        normed = layer.norm_latents(latents)
        context = torch.cat([layer.norm_tokens(tokens), normed], dim=1)[0]  # 6 keys: 4 tokens + 2 latents
        q, (k, v) = layer.to_q(normed)[0], layer.to_kv(context).chunk(2, dim=-1)
        heads = []
        for h in range(2):
            part = slice(4 * h, 4 * h + 4)
            weights = torch.softmax(q[:, part] @ k[:, part].T / math.sqrt(4), dim=-1)  # (2 queries, 6 keys)
            heads.append(weights @ v[:, part])
        expected = latents[0] + layer.to_out(torch.cat(heads, dim=1))
        expected = expected + layer.feed_forward(expected)
    torch.testing.assert_close(got[0], expected, rtol=1e-5, atol=1e-6)


def test_resampler_sees_token_order_and_scales_its_latent_init():
    torch.manual_seed(0)
    resampler = PerceiverResampler(
        input_dim=5, n_input_tokens=4, output_dim=6, n_queries=64, dim=256, depth=1, heads=4
    )
    assert resampler.latents.std().item() == pytest.approx(1 / 16, rel=0.1)  # randn / sqrt(dim)
    with torch.no_grad():
        resampler.positions.normal_()
    tokens = torch.randn(1, 4, 5)
    output, _ = resampler(tokens)
    assert not torch.allclose(output, resampler(tokens.flip(1))[0], atol=1e-4)
    with pytest.raises(ConfigError, match="built for 4 input tokens, got 3"):
        resampler(tokens[:, :3])


def test_save_and_load_give_the_same_conditioning(tmp_path):
    conditioner = tiny_conditioner(build_tiny_sdxl("tiny-wide")["unet"].config, clip_dim=12, seed=3).eval()
    conditioner.save_pretrained(tmp_path / "c")
    loaded = EEGConditioner.from_pretrained(tmp_path / "c").eval()
    eeg = torch.randn(2, 17, 100)
    a, b = conditioner(eeg), loaded(eeg)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    assert a.clip_embedding.norm(dim=-1).allclose(torch.ones(2))
    assert loaded.signal.ch_names == conditioner.signal.ch_names


def test_an_encoder_without_tokens_is_refused():
    with pytest.raises(ConfigError, match="returns one vector per window"):
        token_count(build_encoder("eegproject", DEFAULT_SIGNAL, "tiny"))


def test_guidance_and_null_conditioning_change_the_generated_image():
    from diffusers import StableDiffusionXLPipeline

    components = build_tiny_sdxl("tiny")
    pipe = StableDiffusionXLPipeline(text_encoder=None, text_encoder_2=None, tokenizer=None, tokenizer_2=None,
                                     **components)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    conditioner = tiny_conditioner(components["unet"].config).eval()
    with torch.no_grad():
        cond = conditioner(torch.randn(1, 17, 100))
        null_tokens, null_pooled = conditioner.null_conditioning(1)

    def generate(scale, tokens=cond.encoder_hidden_states, pooled=cond.pooled):
        generator = torch.Generator().manual_seed(0)
        return pipe(prompt_embeds=tokens, pooled_prompt_embeds=pooled, negative_prompt_embeds=null_tokens,
                    negative_pooled_prompt_embeds=null_pooled, guidance_scale=scale, num_inference_steps=2,
                    height=64, width=64, output_type="np", generator=generator).images  # fmt: skip

    plain, guided = generate(1.0), generate(5.0)
    assert plain.shape == (1, 64, 64, 3) and abs(plain - guided).max() > 1e-3
    assert abs(generate(1.0, null_tokens, null_pooled) - plain).max() > 1e-3
    assert abs(generate(5.0) - guided).max() == 0.0  # same seed, same image
