"""fashion_core: the engine of the fashion-image classification studio.

Data, model zoo, training, evaluation, registry, preprocessing, latent space and benchmark.
Never imports Streamlit; TensorFlow is imported lazily where start-up time matters.
"""

__version__ = "0.1.0"
