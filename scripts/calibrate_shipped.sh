#!/bin/sh
# Fit and store the confidence temperature (models/<name>/calibration.json) of the shipped
# Fashion-MNIST models; run from the repository root. Adds one small side file per model.
set -e
for name in conv_autoencoder deep_autoencoder_dnn fashion_net seed003_cnn seed004_cnn; do
    nice -n 19 python -m fashion_core calibrate "$name" --json
done
