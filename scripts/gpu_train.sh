#!/usr/bin/env bash
# Issue 12's longer runs on a lent GPU (the device tool; no TensorFlow there: Keras 3 on JAX).
#
# Runs the project's own `train` commands side by side on one GPU ("lanes"; a lane's runs go one
# after another), then packs the registry folders of the finished runs into $OUT/models.tar.part-*
# (15 MiB parts: `cat models.tar.part-* | tar -x -C DIR`). A run still going at the deadline is
# stopped and left out. Needs, beside the checkout (ignored by git, carried):
#   .whl/    keras 3.15.1, namex, optree wheels for CPython 3.12 (the device image has JAX, not Keras)
#   .gpu/fm/ the four Fashion-MNIST IDX .gz files
# and the checkout's models/ moved aside for the call (the working tree travels in 64 MiB).
# Usage on the device: bash scripts/gpu_train.sh [DEADLINE_SECONDS]
set -u
deadline=${1:-510}
started=$(date +%s)
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/models /tmp/logs
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 FASHION_MODELS_DIR=/tmp/models FASHION_MNIST_DIR=$PWD/.gpu/fm
export XLA_PYTHON_CLIENT_PREALLOCATE=false KERAS_BACKEND=jax
nvidia-smi -L
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" || exit 4

common=(--val-fraction 0.1 --seed 0 --record-argv)
lane() {  # lane NAME: each following "NAME ARGS..." line of stdin is one `train` run, in order
    local lane=$1
    while read -r name args; do
        [ -z "$name" ] && continue
        echo "$(( $(date +%s) - started ))s start $name" >> "/tmp/logs/lane-$lane.txt"
        # shellcheck disable=SC2086
        python3 -m fashion_core train $args "${common[@]}" --name "$name" --json > "/tmp/logs/$name.log" 2>&1
        echo "$(( $(date +%s) - started ))s end $name rc=$?" >> "/tmp/logs/lane-$lane.txt"
    done
}
fn="--arch fashion_net --batch-size 128 --optimizer adamw --lr 0.003 --precision mixed_bfloat16"
lane f1 <<< "fashion_net_w96d3 $fn --option width=96 --option depth=3 --epochs 80" &
lane f2 <<< "fashion_net_w128 $fn --option width=128 --epochs 60" &
dad="--arch deep_autoencoder_dnn --epochs 120 --pretrain-epochs 15 --fine-tune-epochs 0 --batch-size 64 --optimizer adam --lr 0.001"
lane d1 <<< "dad_joint $dad --option frozen_encoder=false" &
lane d2 <<< "dad_t14_joint $dad --option tap=14x14x128 --option frozen_encoder=false" &
lane c1 <<< "cae_joint --arch conv_autoencoder --option frozen_encoder=false --epochs 20 --pretrain-epochs 20 --fine-tune-epochs 5 --batch-size 64 --optimizer adam --lr 0.001" &
lane q <<EOF &
quick_base --preset quick
quick_fsd1_e14 --preset quick --option first_stage_depth=1 --epochs 14
quick_lr6 --preset quick --lr 0.006
quick_fsd1_e12 --preset quick --option first_stage_depth=1
EOF

while sleep 20; do
    elapsed=$(( $(date +%s) - started ))
    running=$(pgrep -f "fashion_core train" | wc -l)
    echo "t=${elapsed}s running=$running"
    for log in /tmp/logs/*.log; do
        printf '  %s: %s\n' "$(basename "$log" .log)" "$(tr '\r' '\n' < "$log" | grep -E 'Epoch|step' | tail -1 | cut -c1-110)"
    done
    [ "$running" -eq 0 ] && break
    if [ "$elapsed" -ge "$deadline" ]; then
        kill $(jobs -p) 2>/dev/null; pkill -f "fashion_core train"; sleep 2
        echo "deadline: stopped $running run(s)"; break
    fi
done
nvidia-smi --query-gpu=name,memory.used --format=csv
cat /tmp/logs/lane-*.txt
for log in /tmp/logs/*.log; do tr '\r' '\n' < "$log" | grep -v '^\s*$' > "/tmp/models/$(basename "$log").txt"; done
for log in /tmp/logs/*.log; do echo "== $log"; tail -c 600 "$log"; echo; done
# The Table III reading's dense layer alone holds 12.8M weights (51 MB): its numbers come back, its files do not.
tar -cf - -C /tmp/models --exclude='dad_t14_joint/*.keras' --exclude='dad_t14_joint/*.npz' . \
    | split -b 15m - "$OUT/models.tar.part-"
ls -la "$OUT"
