"""Image features that drive the simulated visual responses, computed from the rendered pixels.

Two groups, each normalised by fixed constants (not by dataset statistics, so an image's features do not
depend on which other images were generated):

* colour: an 8 × 8 thumbnail in an opponent colour space (luminance, red-green, blue-yellow), 192 values;
* edges: gradient energy of a 32 × 32 grey thumbnail, pooled on a 4 × 4 grid, 16 values.
"""

import numpy as np
from PIL import Image


COLOUR_GRID = 8
EDGE_GRID = 4
EDGE_THUMBNAIL = 32
N_FEATURES = 3 * COLOUR_GRID * COLOUR_GRID + EDGE_GRID * EDGE_GRID
"""Length of a feature vector (208)."""

LUMINANCE_CENTRE, OPPONENT_SCALE, EDGE_CENTRE, EDGE_SCALE = 0.5, 0.25, 0.08, 0.08
"""Fixed affine normalisation of the feature groups (pixel values in [0, 1])."""


def image_features(image: np.ndarray) -> np.ndarray:
    """Feature vector of one image.

    Parameters
    ----------
    image : numpy.ndarray of uint8, shape (H, W, 3)
        RGB pixels.

    Returns
    -------
    numpy.ndarray of float64, shape (N_FEATURES,)
        Colour thumbnail (luminance, R−G, B−(R+G)/2; channel-major), then pooled edge energy.
    """
    picture = Image.fromarray(image)
    thumbnail = np.asarray(picture.resize((COLOUR_GRID, COLOUR_GRID), Image.Resampling.BOX), dtype=np.float64) / 255.0
    red, green, blue = thumbnail[..., 0], thumbnail[..., 1], thumbnail[..., 2]
    luminance = (red + green + blue) / 3.0 - LUMINANCE_CENTRE
    colour = np.stack([luminance, red - green, blue - (red + green) / 2.0]) / OPPONENT_SCALE

    grey = picture.convert("L").resize((EDGE_THUMBNAIL, EDGE_THUMBNAIL), Image.Resampling.BOX)
    grey = np.asarray(grey, dtype=np.float64) / 255.0
    gradient_y, gradient_x = np.gradient(grey)
    energy = np.hypot(gradient_x, gradient_y)
    block = EDGE_THUMBNAIL // EDGE_GRID
    pooled = energy.reshape(EDGE_GRID, block, EDGE_GRID, block).mean(axis=(1, 3))
    edges = (pooled - EDGE_CENTRE) / EDGE_SCALE
    return np.concatenate([colour.ravel(), edges.ravel()])
