"""Classify images with a registry model: preprocess → forward → postprocess (the shape of a
Hugging Face pipeline), used by the dashboard and the ``classify`` command.

``Classifier.forward`` calls the Keras model directly through one ``tf.function`` built with a
fixed input signature (batch dimension free), never ``model.predict``: ``predict`` sets up a
data pipeline on every call, which costs tens of milliseconds for a single image.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from . import litert, precompute
from .calibration import as_calibration
from .classes import keywords_for
from .errors import FashionError, ImageError, ModelNotFoundError
from .ood import confidence_scores, errors_from_reconstructions, ood_score
from .predict import compiled_call
from .preprocess import PreparedImage, prepare_image
from .registry import Registry, default_photo_model_name, model_dataset_spec

DEFAULT_MIN_CONFIDENCE = 0.5


def none_of_these_reason(class_count):
    """The flag reason of an image that looks like none of a model's classes."""
    return f"does not look like any of the {class_count} classes"


@dataclass
class Prediction:
    """One classified image.

    ``ood_score`` is reconstruction error / calibrated threshold (>1: out of distribution), or
    None when no autoencoder is available. ``prepared`` holds what the model saw.
    """

    class_index: int
    class_name: str
    probability: float
    top_k: list
    keywords: tuple
    flagged: bool
    flag_reasons: list
    ood_score: float | None
    prepared: PreparedImage
    class_count: int = 0  # how many classes the model knows (for "none of the N classes")

    @property
    def none_of_these(self):
        """The image does not look like any of the model's classes (OOD score above 1, or blank)."""
        return self.prepared.blank or (self.ood_score is not None and self.ood_score > 1.0)

    @property
    def other_reasons(self):
        """The flag reasons besides "does not look like any of the classes"."""
        return [r for r in self.flag_reasons if r != none_of_these_reason(self.class_count)]

    def to_dict(self):
        """JSON-able dict (without the images)."""
        return {
            "class_index": int(self.class_index),
            "class_name": self.class_name,
            "probability": float(self.probability),
            "top_k": [{"class": name, "probability": float(p)} for name, p in self.top_k],
            "keywords": list(self.keywords),
            "flagged": bool(self.flagged),
            "flag_reasons": list(self.flag_reasons),
            "ood_score": None if self.ood_score is None else float(self.ood_score),
            "none_of_these": bool(self.none_of_these),
        }


class Classifier:
    """A classifier model with its class names, input shape and (optional) OOD autoencoder.

    Parameters
    ----------
    model : keras.Model
        (N, H, W, C) float32 in [0, 1] → (N, K) softmax.
    class_names : sequence of str, length K
    image_shape : tuple (H, W, C)
    autoencoder : keras.Model, optional
        Reconstructs (N, H, W, C); used for the out-of-distribution score.
    ood : dict, optional
        The autoencoder's calibration (``metadata["ood"]``, with ``reconstruction_threshold``).
    name : str, optional
    min_confidence : float
        Top probabilities below this are flagged as "low confidence".
    flip_tta : bool
        Average with the mirrored image (set from the registry for models evaluated that way).
    photo_trained : bool
        The model learnt from real photos (scenes, beds, floors): a busy background is then no
        reason to doubt its answer.
    calibration : calibration.Calibration or float
        The confidence map fitted on the validation split (``calibration.json``; a bare number is
        a temperature): the probabilities people read are ``calibration.apply(p)``. The "none of
        these" calibration keeps reading the raw probabilities it was calibrated on.
    class_keywords : dict, optional
        A catalogue model's own shopper keywords ({class: keywords}); see ``classes.keywords_for``.
    litert_model : bytes, optional
        The model as a LiteRT flatbuffer (``litert.py``): ``forward`` then runs through LiteRT
        (``runtime == "litert"``) instead of TensorFlow; ``from_registry`` passes the stored one of
        a photo model (``use_litert=False`` keeps TensorFlow).
    model_loader : callable, optional
        With ``litert_model`` and ``model=None``: returns the Keras model when something needs it
        (saliency maps), once; a photo served through LiteRT then never holds a TensorFlow copy of
        its weights for answering photos.

    The out-of-distribution score comes from ``ood``: a reconstruction threshold (with an
    autoencoder) or, for models trained with real photos, a confidence threshold calibrated on
    held-out photos (``ood["method"] == "confidence"``).
    """

    def __init__(self, model, class_names, image_shape, *, autoencoder=None, ood=None, name=None,
                 min_confidence=DEFAULT_MIN_CONFIDENCE, flip_tta=False, photo_trained=False, calibration=None,
                 class_keywords=None, litert_model=None, model_loader=None):
        if model is None and (litert_model is None or model_loader is None):
            raise ValueError("a Classifier needs a Keras model, or a LiteRT model and a loader for the Keras one")
        self._model = model
        self._model_loader = model_loader
        self._model_lock = threading.Lock()
        self.class_names = tuple(class_names)
        self.image_shape = tuple(int(d) for d in image_shape)
        self.name = name
        self.min_confidence = float(min_confidence)
        self.ood = dict(ood) if ood else None
        self.confidence_ood = bool(self.ood and self.ood.get("method") == "confidence")
        self.photo_trained = bool(photo_trained)
        self.autoencoder = autoencoder if self.ood and self.ood.get("reconstruction_threshold") else None
        self.ood_source = None  # name of the model whose autoencoder gives the OOD score
        self.flip_tta = bool(flip_tta)
        self.calibration = as_calibration(calibration)
        self.class_keywords = dict(class_keywords or {})
        # the same probabilities either way; LiteRT answers a single photo several times faster (litert.py)
        self.runtime = "litert" if litert_model is not None else "tensorflow"
        self._forward = (litert.compiled_call(litert_model, flip_tta=self.flip_tta) if litert_model is not None
                         else compiled_call(model, self.image_shape, flip_tta=self.flip_tta))
        self._reconstruct = compiled_call(self.autoencoder, self.image_shape) if self.autoencoder is not None else None
        # a photo model's LiteRT file also gives its embedding (Latent space, without TensorFlow)
        self._embed = getattr(self._forward, "embed", None)

    @property
    def model(self):
        """The Keras model (loaded on first use when the classifier answers through LiteRT)."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    self._model = self._model_loader()
        return self._model

    # --- construction from the registry ----------------------------------------------------------

    @classmethod
    def from_registry(cls, name=None, registry=None, **options):
        """Load a registry model (default: ``default_photo_model_name``) with its "none of these"
        calibration: its own confidence threshold (photo models), else an OOD autoencoder, its own
        or the best calibrated one of another model trained on the same dataset."""
        registry = registry or Registry()
        if name is None:
            name = default_photo_model_name(registry)
            if name is None:
                raise ModelNotFoundError(
                    f"no models in {registry.root}: train one first, e.g. "
                    "`python -m fashion_core train --arch fashion_net`."
                )
        entry = registry.get(name)
        meta = entry.metadata
        if options.pop("use_litert", True) and litert.wanted(entry):
            options.setdefault("litert_model", litert.load(entry, precompute.stamp(entry)))
        if options.get("litert_model") is not None and meta.get("image_shape") and meta.get("class_names"):
            model = None  # answered through LiteRT: the Keras model only for saliency maps, loaded then
            options.setdefault("model_loader", lambda: registry.load_served(name))
        else:
            model = registry.load_served(name)
        image_shape = tuple(meta.get("image_shape") or model.inputs[0].shape[1:])
        class_names = meta.get("class_names") or _default_class_names(model)
        if (meta.get("ood") or {}).get("method") == "confidence":
            autoencoder, ood_meta, source = None, meta["ood"], None
        else:
            autoencoder, ood_meta, source = _find_autoencoder(registry, entry, image_shape)
        options.setdefault("flip_tta", entry.uses_flip_tta)
        options.setdefault("photo_trained", entry.is_photo_model)
        options.setdefault("calibration", entry.calibrator)
        options.setdefault("class_keywords", entry.class_keywords)
        classifier = cls(model, class_names, image_shape, autoencoder=autoencoder, ood=ood_meta, name=name, **options)
        classifier.ood_source = source if classifier.autoencoder is not None else None
        return classifier

    # --- the three stages ------------------------------------------------------------------------

    def preprocess(self, source, name="image"):
        """Any image source → ``PreparedImage`` at this model's resolution (see preprocess.py)."""
        return prepare_image(source, self.image_shape, name=name)

    def forward(self, batch):
        """(N, H, W, C) float32 in [0, 1] → (N, K) probabilities."""
        batch = np.asarray(batch, dtype=np.float32)
        return np.asarray(self._forward(batch))

    @property
    def embeds(self):
        """Whether ``embed`` is available (a LiteRT-served model whose file has its embedding)."""
        return self._embed is not None

    @property
    def embedding_dims(self):
        """Length of ``embed``'s vectors (None without a served embedding)."""
        return self._forward.pool.output_widths[1] if self.embeds else None

    def embed(self, batch):
        """(N, H, W, C) float32 in [0, 1] → (N, D) embeddings (the Latent space's vectors: those of
        ``latent.encoder_for``), through LiteRT; only when ``embeds``."""
        if self._embed is None:
            raise FashionError(f"{self.name or 'this model'} has no served embedding; use latent.encoder_for.")
        return np.asarray(self._embed(np.asarray(batch, dtype=np.float32)))

    def ood_scores(self, batch, probabilities=None):
        """(N, H, W, C) → (N,) OOD scores (above 1: none of the classes), or None without a
        calibration. ``probabilities`` (N, K) saves a forward pass for confidence calibrations."""
        if self.confidence_ood:
            return confidence_scores(self.forward(batch) if probabilities is None else probabilities, self.ood)
        if self._reconstruct is None:
            return None
        batch = np.asarray(batch, dtype=np.float32)
        errors = errors_from_reconstructions(batch, self._reconstruct(batch))
        return np.array([ood_score(e, self.ood) for e in errors], dtype=np.float64)

    def postprocess(self, probabilities, prepared, top_k=3, ood_score=None):
        """(K,) probabilities of one image (as ``forward`` returns them) → ``Prediction`` with
        top-k, keywords and flags; the probabilities shown are calibrated (``temperature``).

        ``ood_score`` is computed here from ``prepared`` when not given and an autoencoder is set.
        """
        raw = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        probabilities = self.calibrated(raw)
        k = max(1, min(int(top_k), len(probabilities)))
        order = np.argsort(-probabilities, kind="stable")[:k]
        best = int(order[0])
        if ood_score is None:
            scores = self.ood_scores(prepared.model_input[None], raw[None])
            ood_score = None if scores is None else float(scores[0])
        reasons = []
        if prepared.blank:
            reasons.append("no garment found: the image looks blank")
        elif prepared.busy_background and not self.photo_trained:
            reasons.append("busy background: not a garment on a plain backdrop")
        if ood_score is not None and ood_score > 1.0:
            reasons.append(none_of_these_reason(len(self.class_names)))
        elif probabilities[best] < self.min_confidence and not self.confidence_ood:
            reasons.append(f"low confidence ({probabilities[best]:.0%})")
        class_name = self.class_names[best]
        return Prediction(
            class_index=best,
            class_name=class_name,
            probability=float(probabilities[best]),
            top_k=[(self.class_names[i], float(probabilities[i])) for i in order],
            keywords=keywords_for(class_name, self.class_keywords),
            flagged=bool(reasons),
            flag_reasons=reasons,
            ood_score=None if ood_score is None else float(ood_score),
            prepared=prepared,
            class_count=len(self.class_names),
        )

    def calibrated(self, probabilities):
        """Raw probabilities (..., K) → calibrated ones (the stored calibration applied)."""
        return self.calibration.apply(probabilities)

    def saliency(self, model_input, class_index=None, method=None):
        """(H, W) float map in [0, 1] of the pixels that drove the answer for ``class_index``
        (default: the predicted class), at this model's input size (``saliency.saliency_maps``)."""
        from .saliency import DEFAULT_METHOD, saliency_maps

        batch = np.asarray(model_input, dtype=np.float32)[None]
        if class_index is None:
            class_index = int(self.forward(batch)[0].argmax())
        method = method or DEFAULT_METHOD
        # occlusion only needs answers: a LiteRT-served model probes through its interpreters
        # (several times faster, and no TensorFlow); Grad-CAM needs the Keras model's gradients
        plain = getattr(self._forward, "plain", None)
        model = plain if method == "occlusion" and plain is not None else self.model
        return saliency_maps(model, batch, [int(class_index)], method=method, flip_tta=self.flip_tta)[0]

    # --- convenience -----------------------------------------------------------------------------

    def classify(self, source, top_k=3, name="image"):
        """One image (bytes, PIL image or array) → ``Prediction``; bad input raises ImageError."""
        prepared = self.preprocess(source, name=name)
        batch = prepared.model_input[None]
        probabilities = self.forward(batch)
        scores = self.ood_scores(batch, probabilities)
        return self.postprocess(probabilities[0], prepared, top_k=top_k,
                                ood_score=None if scores is None else float(scores[0]))

    def classify_many(self, items, top_k=3):
        """[(name, bytes)] → one ``Prediction`` or ``ImageError`` per item, in order.

        Bad items never stop the others; the good ones go through the model as one batch.
        """
        results, prepared = [], []
        for name, data in items:
            try:
                item = self.preprocess(data, name=name)
            except ImageError as exc:
                results.append(exc)
                continue
            results.append(None)
            prepared.append((len(results) - 1, item))
        if prepared:
            batch = np.stack([p.model_input for _, p in prepared])
            probabilities = self.forward(batch)
            scores = self.ood_scores(batch, probabilities)
            for row, (slot, item) in enumerate(prepared):
                results[slot] = self.postprocess(probabilities[row], item, top_k=top_k,
                                                 ood_score=None if scores is None else float(scores[row]))
        return results


def _default_class_names(model):
    return tuple(f"class {i}" for i in range(int(model.outputs[0].shape[-1])))


def _dataset_key(metadata):
    """What makes two models' inputs comparable: dataset recipe, classes and image shape."""
    spec = model_dataset_spec(metadata)
    return (repr(sorted(spec.items())), tuple(metadata.get("class_names") or ()), tuple(metadata.get("image_shape") or ()))


def _find_autoencoder(registry, entry, image_shape):
    """(autoencoder, calibration, source name) for ``entry``: its own calibrated autoencoder, else
    the best calibrated one among models of the same dataset; (None, None, None) if none loads."""
    candidates = [entry] if entry.has_autoencoder and entry.metadata.get("ood") else []
    key = _dataset_key(entry.metadata)
    others = [e for e in registry.list()
              if e.name != entry.name and e.has_autoencoder and e.metadata.get("ood")
              and _dataset_key(e.metadata) == key]
    others.sort(key=lambda e: -(e.metadata.get("test_accuracy") or 0.0))
    for candidate in candidates + others:
        try:
            autoencoder = registry.load_autoencoder(candidate.name)
        except FashionError:  # a damaged autoencoder file: try the next model
            continue
        if autoencoder is not None and tuple(autoencoder.inputs[0].shape[1:]) == tuple(image_shape):
            return autoencoder, candidate.metadata["ood"], candidate.name
    return None, None, None


def compare_models(classifiers, source, name="image"):
    """Every classifier's answer for one image: ``(rows, agreement)``.

    ``rows``: one dict per classifier (``model``, ``answer`` — "none of these" or the class —,
    ``class_name``, ``probability`` (calibrated), ``flagged``, ``note``), or with ``error`` when
    the image cannot be read. ``agreement``: ``{"agree": bool, "answers": {answer: [models]}}``.
    """
    rows = []
    for classifier in classifiers:
        try:
            prediction = classifier.classify(source, top_k=1, name=name)
        except ImageError as exc:
            rows.append({"model": classifier.name, "error": str(exc)})
            continue
        rows.append({"model": classifier.name,
                     "answer": "none of these" if prediction.none_of_these else prediction.class_name,
                     "class_name": prediction.class_name, "probability": prediction.probability,
                     "flagged": prediction.flagged, "note": "; ".join(prediction.flag_reasons)})
    answers = {}
    for row in rows:
        if "answer" in row:
            answers.setdefault(row["answer"], []).append(row["model"])
    return rows, {"agree": len(answers) == 1, "answers": answers}
