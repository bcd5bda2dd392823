"""Procedural stimuli: every concept has a visual identity, every exemplar varies around it.

A concept's :class:`ConceptStyle` (outline, colours, texture, layout, background) depends only on the seed
and the concept name, so a concept looks the same at any dataset scale. An exemplar
(:func:`render_image`) moves, scales, rotates and recolours that style slightly and draws a new background.
Rendering is vectorised numpy with anti-aliased edges; :func:`encode_jpeg` writes deterministic bytes.
"""

import colorsys
import dataclasses
import io

import numpy as np
from PIL import Image

from ttdnet.simulate.names import stable_seed


TEXTURES = ("solid", "stripes", "checker", "dots", "rings")
JPEG_QUALITY = 90


@dataclasses.dataclass(frozen=True)
class ConceptStyle:
    """The visual identity of one concept.

    Attributes
    ----------
    polygon_sides : int
        3 … 8 for a regular polygon outline, 0 for a smooth blob given by ``harmonics``.
    harmonics : numpy.ndarray, shape (4, 2)
        Amplitude and phase of the outline harmonics 2 … 5 of a blob, ``r(θ) = 1 + Σ a_k cos(kθ + φ_k)``.
    primary_hsv, secondary_hsv : tuple of 3 float
        Object colours in HSV, each in [0, 1].
    texture : str
        One of :data:`TEXTURES`, mixing the two colours.
    texture_frequency : float
        Texture cycles per object radius.
    texture_angle : float
        Texture orientation in radians (object frame).
    offsets : numpy.ndarray, shape (n_objects, 2)
        Object centres relative to the layout centre, in units of the image half-width.
    relative_scales : numpy.ndarray, shape (n_objects,)
        Object radii relative to the layout's base radius.
    background_hsv : tuple of 3 float
        Mean background colour in HSV.
    """

    polygon_sides: int
    harmonics: np.ndarray
    primary_hsv: tuple[float, float, float]
    secondary_hsv: tuple[float, float, float]
    texture: str
    texture_frequency: float
    texture_angle: float
    offsets: np.ndarray
    relative_scales: np.ndarray
    background_hsv: tuple[float, float, float]


def concept_style(seed: int, concept: str) -> ConceptStyle:
    """Draw the style of ``concept`` from (seed, concept name)."""
    rng = np.random.default_rng(stable_seed(seed, "concept-style", concept))
    polygon_sides = int(rng.choice([0, 0, 3, 4, 5, 6, 8]))
    harmonics = np.column_stack([rng.uniform(0.0, 0.28, 4) * (rng.random(4) < 0.6), rng.uniform(0, 2 * np.pi, 4)])
    hue = rng.random()
    primary = (hue, rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0))
    secondary = ((hue + rng.uniform(0.25, 0.75)) % 1.0, rng.uniform(0.3, 1.0), rng.uniform(0.2, 0.95))
    n_objects = int(rng.choice([1, 1, 1, 2, 3]))
    layouts = {
        1: np.zeros((1, 2)),
        2: np.array([[-0.38, 0.0], [0.38, 0.0]]),
        3: np.array([[0.0, -0.38], [-0.38, 0.3], [0.38, 0.3]]),
    }
    layout_angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(layout_angle), -np.sin(layout_angle)], [np.sin(layout_angle), np.cos(layout_angle)]])
    background_hue = (hue + 0.5 + rng.uniform(-0.2, 0.2)) % 1.0
    return ConceptStyle(
        polygon_sides=polygon_sides,
        harmonics=harmonics,
        primary_hsv=primary,
        secondary_hsv=secondary,
        texture=str(rng.choice(TEXTURES)),
        texture_frequency=float(rng.uniform(1.5, 4.0)),
        texture_angle=float(rng.uniform(0, np.pi)),
        offsets=layouts[n_objects] @ rotation.T,
        relative_scales=rng.uniform(0.75, 1.0, n_objects),
        background_hsv=(background_hue, rng.uniform(0.0, 0.5), rng.uniform(0.25, 0.9)),
    )


def _rgb(hsv: tuple[float, float, float]) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(*hsv))


def _jitter_hue(hsv: tuple[float, float, float], shift: float) -> tuple[float, float, float]:
    return ((hsv[0] + shift) % 1.0, hsv[1], hsv[2])


def _outline_radius(style: ConceptStyle, theta: np.ndarray) -> np.ndarray:
    """Outline radius at polar angle ``theta`` (object frame), at most about 1."""
    if style.polygon_sides:
        sector = 2 * np.pi / style.polygon_sides
        return np.cos(np.pi / style.polygon_sides) / np.cos(np.mod(theta, sector) - sector / 2)
    orders = np.arange(2, 2 + len(style.harmonics))
    amplitudes, phases = style.harmonics[:, 0], style.harmonics[:, 1]
    radius = 1.0 + np.sum(amplitudes[:, None, None] * np.cos(orders[:, None, None] * theta + phases[:, None, None]), 0)
    return radius / (1.0 + amplitudes.sum())


def _texture(style: ConceptStyle, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Share of the secondary colour, in [0, 1], at object-frame coordinates ``x, y``."""
    frequency = style.texture_frequency
    along = x * np.cos(style.texture_angle) + y * np.sin(style.texture_angle)
    across = -x * np.sin(style.texture_angle) + y * np.cos(style.texture_angle)
    if style.texture == "stripes":
        return 0.5 + 0.5 * np.sin(2 * np.pi * frequency * along)
    if style.texture == "checker":
        return (np.sin(2 * np.pi * frequency * along) * np.sin(2 * np.pi * frequency * across) > 0).astype(float)
    if style.texture == "dots":
        cell_x = np.mod(along * frequency, 1.0) - 0.5
        cell_y = np.mod(across * frequency, 1.0) - 0.5
        return np.clip((0.3 - np.hypot(cell_x, cell_y)) * 12.0, 0.0, 1.0)
    if style.texture == "rings":
        return 0.5 + 0.5 * np.cos(2 * np.pi * frequency * np.hypot(x, y))
    return np.zeros_like(x)


def _pixel_span(centre: float, half_width: float, size: int) -> slice:
    """Pixels whose centres lie within ``half_width`` of ``centre`` (image coordinates in [-1, 1])."""
    first = int(np.floor((centre - half_width + 1.0) * size / 2.0 - 0.5))
    last = int(np.ceil((centre + half_width + 1.0) * size / 2.0 - 0.5))
    return slice(max(first, 0), min(last + 1, size))


def render_image(seed: int, concept: str, number: int, size: int, style: ConceptStyle | None = None) -> np.ndarray:
    """Render exemplar ``number`` of ``concept``.

    Parameters
    ----------
    seed : int
        Dataset seed.
    concept : str
        Concept name; its style is :func:`concept_style` unless ``style`` is given.
    number : int
        Exemplar number (the file number); each number draws its own position, scale, rotation, hue jitter
        and background.
    size : int
        Side in pixels.
    style : ConceptStyle, optional
        Precomputed style of ``concept``.

    Returns
    -------
    numpy.ndarray of uint8, shape (size, size, 3)
        RGB image.
    """
    style = concept_style(seed, concept) if style is None else style
    rng = np.random.default_rng(stable_seed(seed, "exemplar", concept, number))
    centre = rng.uniform(-0.15, 0.15, 2)
    scale = rng.uniform(0.8, 1.15)
    angle = rng.uniform(-0.7, 0.7)
    hue_shift = rng.uniform(-0.04, 0.04)
    background_shift = (rng.uniform(-0.08, 0.08), rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15))
    gradient_angle = rng.uniform(0, 2 * np.pi)

    grid = ((np.arange(size) + 0.5) / size * 2.0 - 1.0).astype(np.float32)
    pixel = 2.0 / size

    h, s, v = style.background_hsv
    background = (
        (h + background_shift[0]) % 1.0,
        float(np.clip(s + background_shift[1], 0, 1)),
        float(np.clip(v + background_shift[2], 0, 1)),
    )
    gradient = 0.5 + 0.5 * (grid[None, :] * np.cos(gradient_angle) + grid[:, None] * np.sin(gradient_angle))
    light, dark = _rgb(background), _rgb((background[0], background[1], background[2] * 0.6))
    image = (light + (dark - light) * gradient[..., None]).astype(np.float32)
    image += 0.02 * rng.standard_normal(image.shape, dtype=np.float32)

    primary = _rgb(_jitter_hue(style.primary_hsv, hue_shift))
    secondary = _rgb(_jitter_hue(style.secondary_hsv, hue_shift))
    base_radius = 0.55 if len(style.offsets) == 1 else 0.32
    cos_a, sin_a = np.cos(angle), np.sin(angle)
    for offset, relative_scale in zip(style.offsets, style.relative_scales):
        radius = base_radius * scale * relative_scale
        centre_x, centre_y = centre + offset * scale
        # Only the object's bounding box (plus the anti-aliased edge) is computed.
        columns = _pixel_span(centre_x, radius + 3 * pixel, size)
        rows = _pixel_span(centre_y, radius + 3 * pixel, size)
        dx, dy = grid[None, columns] - centre_x, grid[rows, None] - centre_y
        local_x, local_y = (cos_a * dx + sin_a * dy) / radius, (-sin_a * dx + cos_a * dy) / radius
        rho, theta = np.hypot(local_x, local_y), np.arctan2(local_y, local_x)
        inside = (_outline_radius(style, theta) - rho) * (radius / pixel)
        coverage = np.clip(inside + 0.5, 0.0, 1.0)[..., None]
        mix = _texture(style, local_x, local_y)[..., None]
        rim = 1.0 - 0.5 * np.clip(1.5 - np.abs(inside - 1.5), 0.0, 1.0)[..., None]
        colour = (primary + (secondary - primary) * mix) * rim
        patch = image[rows, columns]
        image[rows, columns] = patch + (colour - patch) * coverage
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def encode_jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of an RGB uint8 image ``(H, W, 3)``; the same pixels always give the same bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
