"""Small widgets every page uses: model selectors, image grids, the "no models yet" notice."""

from __future__ import annotations

import numpy as np
import streamlit as st

from fashion_core.data import sample_indices
from fashion_core.errors import FashionError
from ui import cache

TRAIN_PAGE = "views/train.py"


def no_models_notice():
    """What a page shows when the registry is empty."""
    st.info("There are no models in the registry yet. Train one first (a 1-epoch run on a "
            "small subset takes under a minute).")
    st.page_link(TRAIN_PAGE, label="Go to Train", icon=":material/model_training:")


def loaded_or_error(load, *args):
    """``load(*args)``, or None after showing the message of the ``FashionError`` it raised."""
    try:
        return load(*args)
    except FashionError as exc:
        st.error(str(exc))
        return None


def registry_entries_ui():
    """The registry's models, after noting unreadable folders; None (with the "no models yet"
    notice) when there are none."""
    entries, problems = cache.model_entries()
    registry_problems_notice(problems)
    if not entries:
        no_models_notice()
        return None
    return entries


def registry_problems_notice(problems):
    """Folders in the registry that could not be read (reported, never fatal)."""
    if problems:
        with st.expander(f"{len(problems)} folder(s) in the registry could not be read"):
            for folder, reason in problems:
                st.write(f"**{folder}**: {reason}")


def model_selector(entries, label="Model", key="model", default=None, help=None, filter=None):
    """A selectbox over registry models ("name · dataset · accuracy"); returns the entry or None."""
    entries = [e for e in entries if filter is None or filter(e)]
    if not entries:
        return None
    names = [e.name for e in entries]
    index = names.index(default) if default in names else 0
    chosen = st.selectbox(label, names, index=index, key=key, help=help,
                          format_func=lambda n: cache.entry_label(entries[names.index(n)]))
    return entries[names.index(chosen)]


def to_display(image, scale=1):
    """uint8 (H, W, C) → something ``st.image`` shows: (H, W) grey or (H, W, 3), upscaled by an
    integer factor with nearest neighbour so small images stay crisp."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    return image


PHOTO_DISPLAY_SIDE = 640  # px at most, a photo's long side on screen: a third of the page, sharp at 2x


def photo_for_display(image, max_side=PHOTO_DISPLAY_SIDE, quality=88):
    """A photo (PIL image) as JPEG bytes for ``st.image``, between half of ``max_side`` and
    ``max_side`` on its long side when bigger (``preprocess.reduced``). Given the image itself,
    Streamlit sends it whole as a quality-100 JPEG: ~280 KB per answer for a phone photo's decoded
    copy (1008 x 756), where the page shows it a third of its width."""
    import io

    from fashion_core.preprocess import reduced

    buffer = io.BytesIO()
    reduced(image, max_side).convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def tile(images, columns, pad=2, scale=3, background=255):
    """Images (N, H, W, C) uint8 → one montage (rows x columns), for compact sample grids."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    rows = max(1, int(np.ceil(n / columns)))
    canvas = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), background, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        canvas[y:y + h, x:x + w] = image
    return to_display(canvas, scale)


def image_gallery(images, captions, columns=6, width=96):
    """Images with a caption each, in rows of ``columns``."""
    for start in range(0, len(images), columns):
        cols = st.columns(columns)
        for col, image, caption in zip(cols, images[start:start + columns], captions[start:start + columns]):
            with col:
                st.image(to_display(image, scale=max(1, width // max(1, np.asarray(image).shape[1]))),
                         caption=caption, width=width)


def class_sample_grid(dataset, per_class=4, per_row=5, seed=0):
    """A tile of ``per_class`` training images for every class, with its count."""
    rng = np.random.default_rng(seed)
    counts = dataset.class_counts("train")
    for start in range(0, dataset.num_classes, per_row):
        cols = st.columns(per_row)
        for offset, col in enumerate(cols):
            c = start + offset
            if c >= dataset.num_classes:
                break
            members = np.flatnonzero(dataset.y_train == c)
            with col:
                if len(members) == 0:
                    st.caption(f"**{dataset.class_names[c]}**: no images")
                    continue
                chosen = members[sample_indices(len(members), min(per_class, len(members)), rng)]
                scale = max(1, 64 // dataset.image_shape[0])
                st.image(tile(dataset.x_train[chosen], columns=2, scale=scale),
                         caption=f"{dataset.class_names[c]} · {counts[c]:,} images",
                         width="stretch")


def probability_bars(top_k):
    """The top-k ``[(class name, probability)]`` as labelled bars, the most likely first (in bold).

    Plain progress bars: drawn with every answer on Classify, and a browser draws them for a
    fraction of what a chart costs it (docs/PERFORMANCE.md, "What is left of the ratio")."""
    for i, (name, probability) in enumerate(top_k):
        label = f"**{name}** · {probability:.1%}" if i == 0 else f"{name} · {probability:.1%}"
        st.progress(min(max(float(probability), 0.0), 1.0), text=label)
