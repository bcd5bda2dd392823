"""The suite's work: every backbone sees each image once, however many metrics use it and however many samples."""

import numpy as np
from eval_fixtures import noisy, smooth_image, tiny_backbones, write_image

from ttdnet.eval.api import evaluate
from ttdnet.eval.command import EvaluateConfig


class CountingModule:
    """Wraps a backbone's module and counts the images it is given."""

    def __init__(self, module):
        self.module, self.images = module, 0

    def __call__(self, batch):
        self.images += len(batch)
        return self.module(batch)

    def __getattr__(self, name):
        return getattr(self.module, name)


def test_every_backbone_embeds_each_image_once(tmp_path):
    rng = np.random.default_rng(0)
    n_trials, n_samples = 5, 3
    for i in range(n_trials):
        image = smooth_image(rng, 40)
        write_image(tmp_path / "gt" / f"{i}.png", image)
        for s in range(n_samples):
            write_image(tmp_path / "rec" / f"{i}_s{s}.png", noisy(rng, image, 0.2))
    backbones = tiny_backbones()
    counters = {}
    for name in ("alexnet", "clip", "fid_inception", "lpips"):
        counters[name] = CountingModule(backbones[name].module)
        backbones[name].module = counters[name]
    # Several metrics per backbone: AlexNet(2) and (5); CLIP 2-way and n-way; FID and KID; LPIPS and its pair-id.
    config = EvaluateConfig(
        ground_truth=str(tmp_path / "gt"), reconstructions=str(tmp_path / "rec"), output_dir=str(tmp_path / "out"),
        metrics=["alexnet2", "alexnet5", "clip", "nway_clip", "fid", "kid", "lpips_alex", "ssim_rgb"],
        eval_size=32, batch_size=2, nway_clip_ns=[2], kid_subsets=5, kid_subset_size=4, device="cpu",
        progress=False, download_weights=False,
    )  # fmt: skip
    _, document = evaluate(config, backbones=backbones, log=lambda _: None)
    images = n_trials * (1 + n_samples)  # the ground truth once, then every sample set
    assert {name: counter.images for name, counter in counters.items()} == dict.fromkeys(counters, images)
    assert {"alexnet2", "alexnet5", "clip", "fid", "kid_mean", "pairid_lpips_alex"} <= set(document["metrics"])
