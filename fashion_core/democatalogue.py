"""The demo catalogue: simple colour product shots drawn with Pillow, for tests and the
dashboard's "Demo catalogue" data source."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .catalogue import MIN_IMAGES_PER_CLASS
from .errors import InvalidParameterError

DEMO_CLASSES = ("bag", "shirt", "trousers")


def make_demo_catalogue(destination, n_per_class=30, seed=0, size=64):
    """Write a small catalogue of simple colour product shots on white: ``bag``, ``shirt`` and
    ``trousers`` drawn with Pillow in random colours, positions and sizes, in varied image sizes
    and formats (PNG and JPEG) — for tests and the dashboard's demo button.

    Returns
    -------
    Path
        ``destination``, holding one subfolder per class.
    """
    from PIL import Image, ImageDraw

    if n_per_class < MIN_IMAGES_PER_CLASS or size < 16:
        raise InvalidParameterError(f"a demo catalogue needs n_per_class >= {MIN_IMAGES_PER_CLASS} and size >= 16.")
    destination = Path(destination)
    rng = np.random.default_rng(seed)
    drawers = {"bag": _draw_bag, "shirt": _draw_shirt, "trousers": _draw_trousers}
    for class_name in DEMO_CLASSES:
        folder = destination / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            width = int(size * rng.uniform(1.0, 1.5))  # product photos come in many sizes
            background = tuple(int(v) for v in rng.integers(235, 256, size=3))
            image = Image.new("RGB", (width, size), background)
            colour = tuple(int(v) for v in rng.integers(0, 180, size=3))
            scale = rng.uniform(0.7, 0.9) * size
            centre = (width / 2 + rng.uniform(-0.08, 0.08) * size, size / 2 + rng.uniform(-0.08, 0.08) * size)
            drawers[class_name](ImageDraw.Draw(image), centre, scale, colour)
            if i % 2:
                image.save(folder / f"{class_name}_{i:03d}.jpg", quality=90)
            else:
                image.save(folder / f"{class_name}_{i:03d}.png")
    return destination


def _box(centre, scale, x0, y0, x1, y1):
    """Shape coordinates given in a unit square [-0.5, 0.5] around ``centre``."""
    cx, cy = centre
    return [cx + x0 * scale, cy + y0 * scale, cx + x1 * scale, cy + y1 * scale]


def _draw_bag(draw, centre, scale, colour):
    draw.rounded_rectangle(_box(centre, scale, -0.45, -0.1, 0.45, 0.45), radius=scale * 0.06, fill=colour)
    draw.arc(_box(centre, scale, -0.25, -0.45, 0.25, 0.1), 180, 360, fill=colour, width=max(2, int(scale * 0.06)))


def _draw_shirt(draw, centre, scale, colour):
    cx, cy = centre
    s = scale
    body = [(-0.25, -0.45), (0.25, -0.45), (0.5, -0.2), (0.38, -0.05), (0.25, -0.15),
            (0.25, 0.45), (-0.25, 0.45), (-0.25, -0.15), (-0.38, -0.05), (-0.5, -0.2)]
    draw.polygon([(cx + x * s, cy + y * s) for x, y in body], fill=colour)


def _draw_trousers(draw, centre, scale, colour):
    cx, cy = centre
    s = scale
    legs = [(-0.25, -0.45), (0.25, -0.45), (0.3, 0.45), (0.06, 0.45), (0.0, -0.1),
            (-0.06, 0.45), (-0.3, 0.45)]
    draw.polygon([(cx + x * s, cy + y * s) for x, y in legs], fill=colour)
