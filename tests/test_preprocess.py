"""The preprocessing path: each named step, then the whole path on dataset images and photos."""

import io

import numpy as np
import pytest
from PIL import Image

from fashion_core import preprocess as pp
from fashion_core.data import to_model_input
from fashion_core.errors import ImageError
from fashion_core.photo_proxy import make_catalogue_photos
from tests.helpers import png_bytes

SHAPE = (28, 28, 1)


def encode(image, fmt="PNG", **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def garment_photo(size=(300, 200), box=(60, 40, 140, 170), background=(250, 250, 250), colour=(40, 20, 90)):
    """A flat dark 'garment' rectangle on a light background, as an RGB PIL image."""
    image = Image.new("RGB", size, background)
    image.paste(colour, box)
    return image


# --- named steps --------------------------------------------------------------------------------


def test_luminance_matches_pillow():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(rgb).convert("L"), np.float32)
    assert np.abs(pp.luminance(rgb) - expected).max() <= 1.0


def test_border_and_background_level():
    gray = np.zeros((50, 50), np.float32)
    gray[10:40, 10:40] = 255
    assert pp.background_level(gray) == 0
    assert not pp.has_light_background(gray)
    assert pp.has_light_background(255 - gray)
    assert pp.border_pixels(gray).shape[0] == 50 * 50 - 46 * 46  # 2-pixel ring of a 50x50 image


def test_invert():
    np.testing.assert_array_equal(pp.invert(np.array([0, 255, 100])), [255, 0, 155])


def test_remove_background_makes_tinted_backdrop_black_and_keeps_black_unchanged():
    tinted = np.full((20, 20, 3), (30, 20, 10), np.float32)
    tinted[5:15, 5:15] = 200
    out = pp.remove_background(tinted)
    assert out[0, 0].max() == 0 and out[10, 10].min() > 150
    black = np.zeros((20, 20), np.float32)
    black[5:15, 5:15] = 90
    np.testing.assert_array_equal(pp.remove_background(black), black)


@pytest.mark.parametrize("shape", [(3, 3), (3, 17), (40, 31), (112, 112)])
def test_median3_matches_pillows_median_filter(shape):
    """The min/max network gives exactly Pillow's 3x3 median, edges included."""
    from PIL import ImageFilter

    rng = np.random.default_rng(sum(shape))
    for gray in (rng.integers(0, 256, shape, dtype=np.uint8),
                 (rng.random(shape) > 0.7).astype(np.uint8) * 255,  # speckle on black
                 np.full(shape, 77, np.uint8)):
        expected = np.asarray(Image.fromarray(gray).filter(ImageFilter.MedianFilter(3)))
        np.testing.assert_array_equal(pp.median3(gray), expected)


def test_garment_bbox_ignores_noise_and_finds_blank():
    rng = np.random.default_rng(0)
    gray = np.clip(rng.normal(0, 6, (300, 400)), 0, 255)
    gray[rng.integers(0, 300, 40), rng.integers(0, 400, 40)] = 255  # isolated speckles
    gray[100:200, 150:260] = 180
    left, top, right, bottom = pp.garment_bbox(gray)
    assert abs(left - 150) <= 4 and abs(top - 100) <= 4 and abs(right - 260) <= 4 and abs(bottom - 200) <= 4
    assert pp.garment_bbox(np.zeros((30, 30))) is None
    assert pp.garment_bbox(np.full((1, 1), 10.0)) is None


def test_crop_with_margin_pad_to_square_and_resize():
    array = np.zeros((100, 200), np.float32)
    array[20:60, 50:150] = 255
    crop = pp.crop_with_margin(array, (50, 20, 150, 60), margin=0.1)
    assert crop.shape == (60, 120)  # 10 px margin on each side
    square = pp.pad_to_square(crop)
    assert square.shape == (120, 120) and square[:30].max() == 0 and square[30:90].max() == 255
    small = pp.resize_to_fit(square, 28, 28)
    assert small.shape == (28, 28) and 0 <= small.min() and small.max() <= 255
    # non-square model input: the square is centred on black
    wide = pp.resize_to_fit(np.full((10, 10, 3), 255.0), 20, 40)
    assert wide.shape == (20, 40, 3) and wide[:, :10].max() == 0 and wide[:, 10:30].min() > 250


def test_resize_is_antialiased():
    stripes = np.zeros((280, 280), np.float32)
    stripes[:, ::2] = 255  # one-pixel stripes: point sampling would give 0 or 255
    small = pp.resize_to_fit(stripes, 28, 28)
    assert 100 < small.mean() < 155 and small.std() < 30


def test_reduce_to_8_bits_scales_instead_of_clipping():
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    notes = []
    out = pp.reduce_to_8_bits(image, notes)
    assert out.mode == "L" and list(np.asarray(out)[0]) == [0, 128, 255]
    assert notes == ["16-bit image reduced to 8 bits"]


def test_flatten_transparency_onto_white():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.putpixel((1, 1), (10, 20, 30, 255))
    notes = []
    rgb = pp.flatten_transparency(rgba, notes=notes)
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (255, 255, 255) and rgb.getpixel((1, 1)) == (10, 20, 30)
    assert notes and "transparent" in notes[0]


def test_exif_orientation_applied():
    image = Image.new("RGB", (40, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    decoded = pp.decode_image(encode(image, "JPEG", exif=exif.tobytes()))
    assert decoded.size == (20, 40)


def test_first_frame_of_animated_gif():
    frames = [Image.new("L", (10, 10), 0), Image.new("L", (10, 10), 255)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    prepared = pp.prepare_image(data, SHAPE)
    assert any("first frame" in note for note in prepared.notes)
    assert prepared.original.getpixel((0, 0)) == (0, 0, 0)


# --- the whole path ---------------------------------------------------------------------------------


def test_fashion_mnist_arrays_pass_through_unchanged(small_dataset):
    for image in small_dataset.x_test[:50]:
        prepared = pp.prepare_image(image, SHAPE)
        np.testing.assert_array_equal(prepared.model_input, to_model_input(image))
        assert not prepared.inverted and prepared.model_input.dtype == np.float32
        assert prepared.preview.dtype == np.uint8 and prepared.preview.shape == SHAPE
    # the same image as a PNG upload, and 2-D / float arrays, take the same route
    image = small_dataset.x_test[0]
    np.testing.assert_array_equal(pp.prepare_image(png_bytes(image[..., 0]), SHAPE).model_input, to_model_input(image))
    np.testing.assert_array_equal(pp.prepare_image(image[..., 0], SHAPE).model_input, to_model_input(image))
    np.testing.assert_allclose(pp.prepare_image(to_model_input(image), SHAPE).model_input, to_model_input(image), atol=1e-6)


def test_photo_is_inverted_cropped_and_centred():
    prepared = pp.prepare_image(encode(garment_photo()), SHAPE)
    assert prepared.inverted
    left, top, right, bottom = prepared.bbox
    assert abs(left - 60) <= 3 and abs(top - 40) <= 3 and abs(right - 140) <= 3 and abs(bottom - 170) <= 3
    x = prepared.model_input[..., 0]
    assert x.shape == (28, 28) and x[0, 0] == 0
    rows, cols = np.flatnonzero(x.max(axis=1) > 0.5), np.flatnonzero(x.max(axis=0) > 0.5)
    assert rows[-1] - rows[0] >= 25  # the long side fills the frame, as in Fashion-MNIST
    assert abs((cols[0] + cols[-1]) / 2 - 13.5) <= 1.0  # centred
    assert prepared.original.size == (300, 200) and prepared.original.mode == "RGB"


def test_catalogue_photos_come_back_close_to_the_dataset_image(small_dataset):
    """Model-independent check of the path: synthetic photos of dataset images, once prepared,
    look like the original 28x28 images (high pixel correlation)."""
    images = small_dataset.x_test[:40]
    photos = make_catalogue_photos(images, seed=1)
    assert all(p[:2] == b"\xff\xd8" for p in photos) and Image.open(io.BytesIO(photos[0])).width >= 200
    correlations = [np.corrcoef(pp.prepare_image(p, SHAPE).model_input.ravel(), to_model_input(i).ravel())[0, 1]
                    for p, i in zip(photos, images)]
    assert np.median(correlations) > 0.9 and np.percentile(correlations, 10) > 0.75


def test_colour_model_inverts_all_channels():
    prepared = pp.prepare_image(encode(garment_photo(colour=(200, 40, 40))), (32, 32, 3))
    x = prepared.model_input
    assert x.shape == (32, 32, 3) and prepared.inverted
    garment = x[16, 16]
    assert x[0, 0].max() == 0 and garment[0] < garment[1] and garment[1] > 0.5  # red garment → cyan-ish


def test_large_image_is_analysed_small_but_bbox_in_original_coordinates():
    photo = garment_photo(size=(3000, 2000), box=(600, 400, 1400, 1700))
    prepared = pp.prepare_image(encode(photo), SHAPE)
    width, height = prepared.original.size
    assert pp.WORKING_MAX_SIDE <= width <= pp.DECODE_MAX_SIDE and abs(width / height - 1.5) < 0.01
    left, top, right, bottom = (v * 3000 / width for v in prepared.bbox)  # back to the file's pixels
    assert abs(left - 600) <= 30 and abs(top - 400) <= 30 and abs(right - 1400) <= 30 and abs(bottom - 1700) <= 30


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_big_photo_is_decoded_small_and_the_model_sees_the_same(fmt):
    """A 12-megapixel phone photo: JPEG scaled by its decoder, PNG box-reduced, to at least
    WORKING_MAX_SIDE; what the model gets matches the full-size path (the pixels as an array,
    which is analysed at full size)."""
    rng = np.random.default_rng(0)
    photo = np.clip(rng.normal(235, 6, (3024, 4032, 3)), 0, 255).astype(np.uint8)  # a lit, grainy bed sheet
    photo[700:2500, 1300:2900] = (60, 40, 110)  # the garment
    data = encode(Image.fromarray(photo), fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    prepared = pp.prepare_image(data, (64, 64, 3))
    assert pp.WORKING_MAX_SIDE <= max(prepared.original.size) <= pp.DECODE_MAX_SIDE
    full = pp.prepare_image(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), (64, 64, 3))
    assert np.abs(prepared.model_input - full.model_input).mean() < 0.01
    assert prepared.inverted == full.inverted


@pytest.mark.parametrize("mode", ["P", "1", "I;16", "LA", "RGBA"])
def test_big_images_of_every_mode_are_decoded_small(mode):
    """Palette, 1-bit, 16-bit and transparent images are reduced after their conversion to RGB
    (a box reduction of palette indices would be meaningless, and Pillow refuses it)."""
    image = Image.new("L", (2600, 1300), 240)
    image.paste(20, (900, 300, 1700, 1100))
    if mode == "I;16":
        image = Image.fromarray((np.asarray(image, np.uint16) * 257).astype(np.uint16))
    else:
        image = image.convert(mode)
    for source in (encode(image), image):
        prepared = pp.prepare_image(source, SHAPE)
        assert pp.WORKING_MAX_SIDE <= max(prepared.original.size) <= pp.DECODE_MAX_SIDE
        assert prepared.original.mode == "RGB" and not prepared.blank


def test_a_big_jpeg_keeps_its_exif_orientation_when_decoded_small():
    image = Image.new("RGB", (3000, 1000), (250, 250, 250))
    image.paste((30, 30, 30), (0, 0, 600, 1000))  # dark band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display: the band ends up on top
    prepared = pp.prepare_image(encode(image, "JPEG", exif=exif.tobytes()), SHAPE)
    width, height = prepared.original.size
    assert height > width and max(width, height) <= pp.DECODE_MAX_SIDE
    pixels = np.asarray(prepared.original.convert("L"), np.float32)
    assert pixels[: height // 10].mean() < 80 and pixels[-height // 10:].mean() > 200
    assert any("EXIF" in note for note in prepared.notes)


@pytest.mark.parametrize("colour", [0, 255])
def test_blank_images_give_empty_input_and_a_note(colour):
    prepared = pp.prepare_image(encode(Image.new("L", (64, 64), colour)), SHAPE)
    assert prepared.bbox is None and prepared.blank and prepared.model_input.max() == 0
    assert any("blank" in note for note in prepared.notes)


def test_bad_sources_raise_image_error():
    for source in (b"", b"hello", "a string", np.zeros((3, 3, 2), np.uint8), np.full((4, 4), np.nan)):
        with pytest.raises(ImageError):
            pp.prepare_image(source, SHAPE)
    with pytest.raises(ImageError):
        pp.prepare_image(np.zeros((4, 4), np.uint8), (28, 28, 2))
