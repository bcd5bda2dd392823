"""Per-channel RGB normalisation statistics of the image networks, applied as ``(x - mean) / std`` to [0, 1] input.

* ImageNet: the torchvision (and DINO, DINOv2, SynCLR) statistics.
* CLIP: the statistics of OpenAI CLIP's preprocessing, also used by OpenCLIP's ViT towers.

Each is a tuple of three floats in R, G, B order.
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
