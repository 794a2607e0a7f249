#!/bin/sh
# Fit and store the confidence calibration (models/<name>/calibration.json) of the shipped models
# on each one's validation split; run from the repository root. Adds one small side file per model.
set -e
for name in conv_autoencoder deep_autoencoder_dnn fashion_net fashion_net_large seed003_cnn seed004_cnn seed004_sigmoid \
            photo_net photo_lite0 photo_ensemble; do
    nice -n 19 python -m fashion_core calibrate "$name" --json
done
