#!/bin/sh
# The shipped label audit (models/.audits/fashion-mnist.json) and the flipped-label check
# (docs/label_flip_check.json) that README reports; run from the repository root.
set -e
nice -n 19 python -m fashion_core audit-labels --arch seed003_cnn --folds 3 --epochs 3 --name fashion-mnist --quiet --json > /dev/null
nice -n 19 python -m scripts.label_flip_check --images 20000 --flipped 1000 --arch seed003_cnn --folds 3 --epochs 3 --save docs/label_flip_check.json
