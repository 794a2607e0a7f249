"""One preprocessing path from any uploaded image to the model's input (dashboard, CLI, tests).

Fashion-MNIST was made by trimming a product photo, resizing its longest edge to 28 pixels,
extending it to a square and negating it: a bright garment, centred, on black. Real uploads are
colour photos on a light background, any size, sometimes EXIF-rotated or transparent. The
steps below mirror Fashion-MNIST's recipe so such photos look like what the model was trained on:

decode (safely) → EXIF orientation → flatten transparency onto white → grayscale (or RGB for
colour models) → detect a light background and invert → remove the background level → crop to
the garment with a small margin → pad to a square → anti-aliased resize into the model size.

An image that already is model-ready (the model's size, dark background, as Fashion-MNIST arrays
are) passes through unchanged. Every step is a small function with its own test.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # the dashboard's upload limit uses the same number (20 MB)
MAX_PIXELS = 40_000_000  # refuse before decoding (decompression bombs)

# Analysis happens on a copy no larger than this (bounding boxes are mapped back): big photos
# would otherwise cost seconds of numpy work for a 28-pixel result.
WORKING_MAX_SIDE = 640
# A photo more than twice that size is decoded smaller (JPEG: scaled by the decoder itself; other
# formats: an integer box reduction), never below WORKING_MAX_SIDE on its long side: a 12-megapixel
# phone photo took ~240 ms to prepare at full size and ~27 ms this way (docs/PERFORMANCE.md §1d).
DECODE_MAX_SIDE = 2 * WORKING_MAX_SIDE
LIGHT_BACKGROUND_LEVEL = 128  # median border luminance above this means "light background"
BORDER_FRACTION = 0.04  # width of the border ring used to estimate the background
MASK_MAX_SIDE = 128  # the garment mask is found on a copy at most this big
FOREGROUND_MIN_LEVEL = 24  # after background removal, pixels above this may be garment
FOREGROUND_RELATIVE_LEVEL = 0.2  # ... and above this fraction of the brightest garment pixel
CROP_MARGIN = 0.02  # margin around the garment box, as a fraction of its longest side
# Median absolute deviation of the border's luminance above which the backdrop is not plain
# (uniform noise gives ~64; a catalogue backdrop with JPEG noise ~3; a garment touching the
# edge moves the median deviation only while it covers less than half of the border).
BUSY_BACKGROUND_SPREAD = 24.0

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


@dataclass
class PreparedImage:
    """An image ready for the model, with what a person needs to see and know about it.

    Attributes
    ----------
    model_input : ndarray of shape (H, W, C), float32 in [0, 1]
        Garment bright on black at the model's resolution.
    preview : ndarray of shape (H, W, C), uint8
        The same image as bytes: "what the model sees".
    original : PIL.Image.Image
        The decoded, EXIF-oriented RGB image (for display). A photo more than ``DECODE_MAX_SIDE``
        pixels on its long side is decoded smaller, but at least ``WORKING_MAX_SIDE``.
    inverted : bool
        A light background was detected and the image inverted.
    bbox : tuple of int (left, top, right, bottom) or None
        The garment's box in ``original`` coordinates; None when no garment was found.
    notes : list of str
        Human notes on what was done ("first frame of an animated GIF", ...).
    busy_background : bool
        The border is not a plain backdrop (noise, a scene): the garment cannot be separated
        reliably, so answers deserve a warning. Always False for model-ready images.
    """

    model_input: np.ndarray
    preview: np.ndarray
    original: Image.Image
    inverted: bool
    bbox: tuple | None
    notes: list = field(default_factory=list)
    busy_background: bool = False

    @property
    def blank(self):
        """True when nothing garment-like was found (all-white, all-black, 1x1 images...)."""
        return self.bbox is None


# --- decoding ----------------------------------------------------------------------------------


def check_upload_size(n_bytes, name="image"):
    """Refuse files over ``MAX_UPLOAD_BYTES`` (call with the size *before* reading a file)."""
    if n_bytes > MAX_UPLOAD_BYTES:
        raise ImageError(
            f"{name}: {n_bytes / 2**20:.1f} MB is over the {MAX_UPLOAD_BYTES // 2**20} MB upload limit."
        )


def _sniff(data):
    """A guess at what a non-image file is, for the error message."""
    head = data[:512].lstrip()
    if head.startswith(b"%PDF"):
        return "looks like a PDF document"
    if b"<svg" in head.lower() or head.startswith(b"<?xml"):
        return "looks like an SVG drawing"
    if head.startswith(b"PK\x03\x04"):
        return "looks like a zip archive"
    try:
        head.decode("utf-8")
        return "looks like a text file"
    except UnicodeDecodeError:
        return "unknown format"


def _open_lazily(data, name):
    """Open the header only (Pillow is lazy) and refuse oversized images before decoding."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: refused: too many pixels to decode safely ({exc}).") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ImageError(f"{name}: not an image Pillow can read ({_sniff(data)}).") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{name}: refused: {width}x{height} is {width * height / 1e6:.0f} million pixels, over "
            f"the limit of {MAX_PIXELS // 1_000_000} million (a decompression bomb?)."
        )
    if width < 1 or height < 1:
        raise ImageError(f"{name}: the image has no pixels ({width}x{height}).")
    return image


def _load_pixels(image, name):
    """Decode the pixels, turning truncation, corruption and bomb warnings into ImageError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: refused: too many pixels to decode safely ({exc}).") from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(f"{name}: damaged or truncated image file ({reason}).") from None


def first_frame(image, notes):
    """Keep only the first frame of an animated image (GIF, APNG, WebP)."""
    frames = getattr(image, "n_frames", 1)
    if getattr(image, "is_animated", False) or frames > 1:
        image.seek(0)
        notes.append(f"first frame of an animated {image.format or 'image'} ({frames} frames)")
    return image


def apply_exif_orientation(image, notes=None):
    """Rotate/flip as the camera's EXIF orientation tag says (phone photos)."""
    try:
        orientation = image.getexif().get(0x0112, 1)
        oriented = ImageOps.exif_transpose(image)
    except Exception:  # broken EXIF blocks are common; the pixels are still fine
        return image
    if orientation not in (None, 1) and notes is not None:
        notes.append(f"rotated according to its EXIF orientation ({orientation})")
    return oriented if oriented is not None else image


def reduce_to_8_bits(image, notes=None):
    """16-bit (and 32-bit integer / float) grayscale images → 8-bit "L" by scaling, not clipping."""
    if image.mode not in _SIXTEEN_BIT_MODES and image.mode != "F":
        return image
    values = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = 1.0 if values.size and np.nanmax(values) <= 1.0 else 255.0
        scaled = np.nan_to_num(values) / top * 255.0
    else:
        scaled = values / 257.0 if values.size and values.max() > 255 else values
    if notes is not None:
        notes.append("16-bit image reduced to 8 bits" if image.mode != "F" else "floating-point image scaled to 8 bits")
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def flatten_transparency(image, background=(255, 255, 255), notes=None):
    """Composite any transparency (alpha, palette transparency) onto white; return RGB.

    Product cut-outs are transparent around the garment: white is what a shop page shows there.
    """
    has_alpha = image.mode in _ALPHA_MODES or (image.mode in ("P", "L", "RGB") and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        if notes is not None and np.asarray(rgba.getchannel("A")).min() < 255:
            notes.append("transparent areas flattened onto white")
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if image.mode == "CMYK" and notes is not None:
        notes.append("CMYK image converted to RGB")
    return image.convert("RGB")


def decode_image(data, name="image", max_side=None):
    """Decode image bytes into an EXIF-oriented RGB ``PIL.Image`` or raise ``ImageError``.

    Refuses empty and oversized files, non-images (text, SVG, PDF renamed to .png), truncated
    files and decompression bombs (by pixel count, before decoding). With ``max_side``, an image
    more than that on its long side comes back smaller, but at least half of it (``reduced``).
    """
    return _decode(data, name, max_side)[0]


def reduced(image, max_side):
    """A decoded RGB (or grey) PIL ``image`` no more than ``max_side`` on its long side and never
    less than half of it (an integer box reduction: each pixel the mean of a block); smaller images
    are returned as they are. Not for palette or 1-bit images: convert them first."""
    factor = int(np.ceil(max(image.size) / max_side))
    return image.reduce(factor) if factor > 1 else image


def _draft(image, max_side):
    """Tell a JPEG file's decoder, before it decodes, to scale by 1/2, 1/4 or 1/8 (Pillow's
    ``draft``: it skips the detail, far faster than decoding every pixel), keeping at least half
    of ``max_side`` on the long side; ``reduced`` does the rest."""
    width, height = image.size
    if image.format == "JPEG" and max(width, height) > max_side:
        scale = max_side / 2 / max(width, height)
        image.draft(None, (max(1, int(np.ceil(width * scale))), max(1, int(np.ceil(height * scale)))))
    return image


def _decode(data, name, max_side=None):
    """``(rgb_image, notes)``; see ``decode_image``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"{name}: expected image bytes, got {type(data).__name__}.")
    data = bytes(data)
    if not data:
        raise ImageError(f"{name}: not an image Pillow can read (the file is empty).")
    check_upload_size(len(data), name)
    notes = []
    image = _open_lazily(data, name)
    image = first_frame(image, notes)
    if max_side is not None:
        image = _draft(image, max_side)
    _load_pixels(image, name)
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        image = reduce_to_8_bits(image, notes)
    image = apply_exif_orientation(image, notes)
    try:
        rgb = flatten_transparency(image, notes=notes)
    except (OSError, ValueError) as exc:
        raise ImageError(f"{name}: could not convert the image's colours ({exc}).") from None
    return (rgb if max_side is None else reduced(rgb, max_side)), notes


# --- pixel steps (numpy, float32 0..255) -----------------------------------------------------------


def luminance(rgb):
    """(H, W, 3) → (H, W) luminance (ITU-R 601-2, as Pillow's "L" conversion)."""
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim == 2:
        return rgb
    if rgb.shape[-1] == 1:
        return rgb[..., 0]
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def border_pixels(array, fraction=BORDER_FRACTION):
    """The outer ring of an (H, W[, C]) array, as (n,) or (n, C): where the background shows."""
    h, w = array.shape[:2]
    k = max(1, int(round(fraction * min(h, w))))
    if 2 * k >= h or 2 * k >= w:
        return array.reshape(h * w, *array.shape[2:])
    parts = [array[:k], array[-k:], array[k:-k, :k], array[k:-k, -k:]]
    return np.concatenate([p.reshape(-1, *array.shape[2:]) for p in parts], axis=0)


def background_level(array):
    """Median border value per channel: (C,) for (H, W, C), a float for (H, W)."""
    return np.median(border_pixels(np.asarray(array, dtype=np.float32)), axis=0)


def has_light_background(gray):
    """True when the image's border is light (a product photo), False for dark (Fashion-MNIST)."""
    return float(background_level(gray)) > LIGHT_BACKGROUND_LEVEL


def background_spread(gray):
    """Median absolute deviation of the border of an (H, W) array: ~0 for a plain backdrop."""
    border = border_pixels(np.asarray(gray, dtype=np.float32))
    return float(np.median(np.abs(border - np.median(border))))


def invert(array):
    """255 - x: light background → dark background, dark garment → bright garment."""
    return 255.0 - np.asarray(array, dtype=np.float32)


def remove_background(array):
    """Subtract the border's level (a tinted or grey backdrop) so the background becomes 0, then
    stretch back to 0..255. Works per channel for colour; a black background is unchanged."""
    array = np.asarray(array, dtype=np.float32)
    level = np.minimum(background_level(array), 254.0)
    if np.all(level <= 0):
        return array
    scale = np.float32(255.0) / (np.float32(255.0) - level.astype(np.float32))
    if array.ndim == 3:  # per-channel constants tiled along rows: long contiguous loops, same values
        level, scale = np.tile(level, array.shape[1]), np.tile(scale, array.shape[1])
    out = np.subtract(array.reshape(array.shape[0], -1), level, dtype=np.float32)  # then in place
    np.multiply(out, scale, out=out)
    return np.clip(out, 0.0, 255.0, out=out).reshape(array.shape)


# Compare-exchanges of a 9-input median network (Paeth, Graphics Gems; Devillard's opt_med9):
# after them, input 4 holds the median of the nine.
_MEDIAN9_NETWORK = ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
                    (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2))


def median3(gray):
    """3x3 median filter of a uint8 (H, W) array, edges replicated: the same values as Pillow's
    ``ImageFilter.MedianFilter(3)``, about 15x faster (element-wise min/max over the nine shifted
    copies instead of a rank selection per pixel)."""
    gray = np.asarray(gray, dtype=np.uint8)
    h, w = gray.shape
    padded = np.pad(gray, 1, mode="edge")
    v = [padded[i: i + h, j: j + w].copy() for i in range(3) for j in range(3)]
    for a, b in _MEDIAN9_NETWORK:
        low = np.minimum(v[a], v[b])
        np.maximum(v[a], v[b], out=v[b])
        v[a] = low
    return v[4]


def garment_bbox(gray):
    """Box (left, top, right, bottom) of the bright garment in a dark-background (H, W) array,
    right/bottom exclusive; None when the image is blank.

    The mask is computed on a box-averaged copy (at most ``MASK_MAX_SIDE`` pixels) after a 3x3
    median filter, so JPEG speckle and sensor noise neither stretch the box nor cost time.
    """
    gray = np.clip(np.asarray(gray, dtype=np.float32), 0, 255)
    h, w = gray.shape
    factor = max(1, int(np.ceil(max(h, w) / MASK_MAX_SIDE)))
    small = Image.fromarray(gray)
    if factor > 1:
        small = small.reduce(factor)
    if min(small.size) >= 3:
        small = median3(np.asarray(small.convert("L")))
    small = np.asarray(small, dtype=np.float32)
    peak = float(small.max(initial=0.0))
    if peak < FOREGROUND_MIN_LEVEL:
        return None
    mask = small > max(FOREGROUND_MIN_LEVEL, FOREGROUND_RELATIVE_LEVEL * peak)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return (int(cols[0]) * factor, int(rows[0]) * factor,
            min(w, (int(cols[-1]) + 1) * factor), min(h, (int(rows[-1]) + 1) * factor))


def crop_with_margin(array, bbox, margin=CROP_MARGIN):
    """Crop (H, W[, C]) to ``bbox`` grown by ``margin`` × its longest side (clipped to the image)."""
    left, top, right, bottom = bbox
    pad = int(round(margin * max(right - left, bottom - top)))
    h, w = array.shape[:2]
    return array[max(0, top - pad): min(h, bottom + pad), max(0, left - pad): min(w, right + pad)]


def pad_to_square(array, fill=0.0):
    """Centre (H, W[, C]) on a square canvas of side max(H, W) filled with ``fill`` (black)."""
    h, w = array.shape[:2]
    side = max(h, w)
    out = np.full((side, side, *array.shape[2:]), fill, dtype=np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    out[top: top + h, left: left + w] = array
    return out


def resize_to_fit(array, height, width):
    """Anti-aliased resize of (S, S[, C]) so its longest side fits (height, width), centred on
    black. Pillow's LANCZOS filter widens with the scale factor, so downscaling is antialiased."""
    array = np.clip(np.asarray(array, dtype=np.float32), 0, 255)
    h, w = array.shape[:2]
    scale = min(height / h, width / w)
    new_h, new_w = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    channels = array.shape[2] if array.ndim == 3 else None
    if (new_h, new_w) == (h, w):
        resized = array
    elif channels in (None, 1):
        plane = array if channels is None else array[..., 0]
        resized = np.asarray(Image.fromarray(plane).resize((new_w, new_h), Image.LANCZOS))
        resized = resized if channels is None else resized[..., None]
    else:
        resized = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(array[..., c]))
                                       .resize((new_w, new_h), Image.LANCZOS)) for c in range(channels)], axis=-1)
    out = np.zeros((height, width, *array.shape[2:]), dtype=np.float32)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top: top + new_h, left: left + new_w] = resized
    return np.clip(out, 0, 255)


# --- the whole path ---------------------------------------------------------------------------------


def _as_pixels(source, name):
    """Any accepted source → ``(rgb PIL image, None, notes)`` for encoded bytes and PIL images,
    ``(None, float32 (H, W, 3|1) array, notes)`` for arrays."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        image, notes = _decode(source, name, DECODE_MAX_SIDE)
        return image, None, notes
    if isinstance(source, Image.Image):
        notes = []
        _load_pixels(source, name)
        image = reduce_to_8_bits(source, notes) if source.mode in _SIXTEEN_BIT_MODES or source.mode == "F" else source
        image = flatten_transparency(apply_exif_orientation(image, notes), notes=notes)
        return reduced(image, DECODE_MAX_SIDE), None, notes
    if isinstance(source, np.ndarray):
        array = source
        if array.ndim == 2:
            array = array[..., None]
        if array.ndim != 3 or array.shape[-1] not in (1, 3) or min(array.shape[:2]) < 1:
            raise ImageError(f"{name}: expected an (H, W), (H, W, 1) or (H, W, 3) array, got {source.shape}.")
        if array.dtype == np.uint8:
            pixels = array.astype(np.float32)
        elif np.issubdtype(array.dtype, np.floating):
            if not np.all(np.isfinite(array)):
                raise ImageError(f"{name}: the array contains NaN or infinite values.")
            pixels = np.asarray(array, np.float32) * (255.0 if array.max(initial=0) <= 1.0 else 1.0)
        else:
            raise ImageError(f"{name}: unsupported array type {array.dtype} (use uint8 or float in [0, 1]).")
        return None, np.clip(pixels, 0, 255), []
    raise ImageError(f"{name}: expected image bytes, a PIL image or a numpy array, got {type(source).__name__}.")


def _to_channels(pixels, channels):
    """(H, W, 1|3) float → the model's channel count (grayscale by luminance, or RGB)."""
    if channels == 1:  # rounded like Pillow's "L" conversion, so a grey PNG keeps its exact values
        return np.rint(luminance(pixels))[..., None]
    if pixels.shape[-1] == 1:
        return np.repeat(pixels, 3, axis=-1)
    return pixels


def _working_copy(source):
    """Shrink very large images for analysis: ``(float32 (H, W, C) pixels, scale back to the
    source's coordinates)``. ``source`` is an RGB PIL image (box-resized by Pillow on its 8-bit
    pixels, one pass) or a float (H, W, C) array (box-resized one float plane at a time)."""
    is_image = isinstance(source, Image.Image)
    w, h = source.size if is_image else source.shape[1::-1]
    if max(h, w) <= WORKING_MAX_SIDE:
        return (np.asarray(source, dtype=np.float32) if is_image else source), 1.0
    scale = WORKING_MAX_SIDE / max(h, w)
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    if is_image:
        return np.asarray(source.resize(size, Image.BOX), dtype=np.float32), 1.0 / scale
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(source[..., c])).resize(size, Image.BOX))
              for c in range(source.shape[-1])]
    return np.stack(planes, axis=-1), 1.0 / scale


def recipe(image_shape):
    """What a deployed model needs to see the pixels this studio's models see: ``prepare_image``'s
    steps and constants as plain data (written next to an exported model)."""
    height, width, channels = (int(d) for d in image_shape)
    return {
        "input_shape": [height, width, channels],
        "channels": "rgb" if channels == 3 else "grayscale (ITU-R 601 luminance)",
        "dtype": "float32",
        "value_range": [0.0, 1.0],
        "background": "black (0): the garment is bright on black, as in Fashion-MNIST",
        "light_background_inversion": {
            "rule": "if the median luminance of the border ring is above the level, invert (255 - x)",
            "level": LIGHT_BACKGROUND_LEVEL, "border_fraction": BORDER_FRACTION,
        },
        "steps": ["decode, apply EXIF orientation, flatten transparency onto white (a photo over "
                  f"{DECODE_MAX_SIDE} px on its long side: decoded at 1/2, 1/4 or 1/8 scale for a JPEG, then "
                  f"box-reduced by an integer factor, to between {DECODE_MAX_SIDE // 2} and {DECODE_MAX_SIDE} px)",
                  "convert to the model's channels",
                  "invert a light background (see light_background_inversion)",
                  "subtract the background level (median of the border ring), clip at 0",
                  f"crop to the garment (pixels above {FOREGROUND_MIN_LEVEL} and above "
                  f"{FOREGROUND_RELATIVE_LEVEL:.0%} of the brightest) with a {CROP_MARGIN:.0%} margin",
                  "pad to a square with black", f"anti-aliased resize to {height}x{width}", "divide by 255"],
        "passthrough": "an image already at the model's size on a dark background is used as it is",
        "reference_implementation": "fashion_core.preprocess.prepare_image",
    }


def prepare_image(source, image_shape, name="image"):
    """Run the whole preprocessing path.

    Parameters
    ----------
    source : bytes, PIL.Image.Image or ndarray
        Encoded image bytes, a PIL image, or a uint8 array (H, W), (H, W, 1), (H, W, 3)
        (float arrays in [0, 1] are accepted too). A Fashion-MNIST-style array (model size,
        dark background) passes through unchanged.
    image_shape : tuple (H, W, C)
        The model's input shape; C is 1 (grayscale) or 3 (colour).
    name : str
        Used in error messages.

    Returns
    -------
    PreparedImage

    Raises
    ------
    ImageError
        For anything that is not a safely decodable image.
    """
    height, width, channels = (int(d) for d in image_shape)
    if channels not in (1, 3):
        raise ImageError(f"{name}: models with {channels} channels are not supported (1 or 3).")
    original, pixels, notes = _as_pixels(source, name)
    if pixels is None:  # an image: Pillow shrinks its 8-bit pixels, floats only at working size
        working, back_scale = _working_copy(original)
        working, full_size = _to_channels(working, channels), original.size[::-1]
    else:
        pixels = _to_channels(pixels, channels)
        (working, back_scale), full_size = _working_copy(pixels), pixels.shape[:2]
    gray = luminance(working)
    inverted = has_light_background(gray)
    if inverted:
        working, gray = invert(working), invert(gray)
        notes.append("light background detected: inverted so the garment is bright on black")

    model_ready = working.shape[:2] == (height, width) and not inverted
    busy = False
    if model_ready:  # e.g. a Fashion-MNIST image: already trimmed, centred and negated
        bbox = garment_bbox(gray)
        result = working
    else:
        busy = background_spread(gray) > BUSY_BACKGROUND_SPREAD
        if busy:
            notes.append("busy background: the garment could not be separated from it reliably")
        working = remove_background(working)
        bbox = garment_bbox(luminance(working))
        if bbox is None:
            result = np.zeros((height, width, channels), np.float32)
        else:
            result = resize_to_fit(pad_to_square(crop_with_margin(working, bbox)), height, width)
    if bbox is None:
        notes.append("no garment found: the image looks blank")
    elif back_scale != 1.0:
        h, w = full_size
        left, top, right, bottom = bbox
        bbox = (int(left * back_scale), int(top * back_scale),
                min(w, int(np.ceil(right * back_scale))), min(h, int(np.ceil(bottom * back_scale))))

    model_input = (np.clip(result, 0, 255) / 255.0).astype(np.float32)
    if original is None:
        rgb = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels
        original = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    return PreparedImage(
        model_input=model_input,
        preview=np.clip(np.rint(model_input * 255.0), 0, 255).astype(np.uint8),
        original=original,
        inverted=bool(inverted),
        bbox=bbox,
        notes=notes,
        busy_background=bool(busy),
    )
