"""Sampling SDXL conditioned on EEG: one pipeline call with classifier-free guidance against the null conditioning.

The stock ``StableDiffusionXLPipeline`` (no text encoders) gets the conditioner's tokens and pooled embedding as
``prompt_embeds``/``pooled_prompt_embeds`` and the learned null conditioning as the negatives, and returns
latents; they are decoded here by the VAE in its own dtype (the SDXL VAE overflows in fp16, so it usually stays
fp32 while the UNet runs in bf16/fp16).
"""

import torch


def decode_latents(vae, latents: torch.Tensor) -> list:
    """PIL images of SDXL latents ``(B, C, h, w)`` (scaled), decoded by the VAE in its own dtype."""
    from diffusers.image_processor import VaeImageProcessor

    with torch.no_grad():
        images = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
    return VaeImageProcessor().postprocess(images.float(), output_type="pil")


@torch.no_grad()
def sample_images(pipeline, conditioner, eeg: torch.Tensor, generators: list, *, num_inference_steps: int,
                  guidance_scale: float, height: int, width: int,
                  original_size: tuple[int, int] | None = None) -> list:  # fmt: skip
    """One image per EEG trial.

    Parameters
    ----------
    pipeline : diffusers.StableDiffusionXLPipeline
    conditioner : ttdnet.models.EEGConditioner
    eeg : torch.Tensor, shape (B, n_chans, n_times)
        On the conditioner's device.
    generators : list of torch.Generator
        One per image: its initial noise.
    original_size : tuple of int, optional
        SDXL's ``original_size`` micro-conditioning, ``(height, width)``: the typical size of the training images
        before resizing (``bridge.json``); None gives the pipeline's default, ``(height, width)``.

    Returns
    -------
    list of PIL.Image.Image
    """
    condition = conditioner(eeg)
    null_tokens, null_pooled = conditioner.null_conditioning(eeg.shape[0])
    latents = pipeline(
        prompt_embeds=condition.encoder_hidden_states,
        pooled_prompt_embeds=condition.pooled,
        negative_prompt_embeds=null_tokens,
        negative_pooled_prompt_embeds=null_pooled,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        height=height,
        width=width,
        original_size=original_size,
        generator=generators,
        output_type="latent",
    ).images
    return decode_latents(pipeline.vae, latents)
