#!/usr/bin/env bash
# Issue 12's longer runs on a lent GPU (the device tool; no TensorFlow there: Keras 3 on JAX).
#
# Runs the project's own `train` commands side by side on one GPU, then packs each finished model
# folder into $OUT/NAME.tgz (the registry layout: unpack into models/). A run still going at the
# deadline is stopped and left out. Needs, beside the checkout (ignored by git, carried):
#   .whl/  keras 3.15.1, namex, optree wheels for CPython 3.12 (the device image has JAX, not Keras)
#   .gpu/fm/  the four Fashion-MNIST IDX files, xz-compressed (the working tree travels in 64 MiB)
# Usage on the device: bash scripts/gpu_train.sh [DEADLINE_SECONDS]
set -u
deadline=${1:-550}
started=$(date +%s)
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/fm /tmp/models /tmp/logs
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 FASHION_MODELS_DIR=/tmp/models FASHION_MNIST_DIR=/tmp/fm
export XLA_PYTHON_CLIENT_PREALLOCATE=false KERAS_BACKEND=jax
python3 - <<'EOF' || exit 4
import gzip, lzma, pathlib, shutil
for src in pathlib.Path(".gpu/fm").glob("*.xz"):
    with lzma.open(src) as f, gzip.open(f"/tmp/fm/{src.stem}.gz", "wb", compresslevel=1) as g:
        shutil.copyfileobj(f, g)
EOF
nvidia-smi -L
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__); print(keras.ops.sum(keras.ops.ones((4, 4))))" \
  || { echo "Keras on JAX failed: trying torch"; export KERAS_BACKEND=torch; }

run() {  # run NAME ARGS...: one `train` command in the background, its log in /tmp/logs
    local name=$1; shift
    python3 -m fashion_core train "$@" --name "$name" --record-argv > "/tmp/logs/$name.log" 2>&1 &
    echo "$!" > "/tmp/logs/$name.pid"
}
run fashion_net_w96 --arch fashion_net --option width=96 --epochs 80 --batch-size 128 --optimizer adamw --lr 0.003 \
    --val-fraction 0.1 --seed 0 --precision mixed_bfloat16
run fashion_net_w96d3 --arch fashion_net --option width=96 --option depth=3 --epochs 80 --batch-size 128 --optimizer adamw \
    --lr 0.003 --val-fraction 0.1 --seed 0 --precision mixed_bfloat16
run deep_autoencoder_dnn_paper --arch deep_autoencoder_dnn --option tap=14x14x128 --epochs 120 --pretrain-epochs 15 \
    --batch-size 64 --optimizer adam --lr 0.001 --val-fraction 0.1 --seed 0
run conv_autoencoder_paper --arch conv_autoencoder --epochs 20 --pretrain-epochs 20 --fine-tune-epochs 5 --batch-size 64 \
    --optimizer adam --lr 0.001 --val-fraction 0.1 --seed 0

while sleep 10; do
    running=0
    for pid in /tmp/logs/*.pid; do kill -0 "$(cat "$pid")" 2>/dev/null && running=$((running + 1)); done
    elapsed=$(( $(date +%s) - started ))
    echo "t=${elapsed}s running=$running"
    [ "$running" -eq 0 ] && break
    if [ "$elapsed" -ge "$deadline" ]; then
        for pid in /tmp/logs/*.pid; do kill "$(cat "$pid")" 2>/dev/null; done
        echo "deadline: stopped $running run(s)"; break
    fi
done
nvidia-smi --query-gpu=name,memory.used --format=csv
for dir in /tmp/models/*/; do
    name=$(basename "$dir")
    [ -f "$dir/metadata.json" ] && tar -czf "$OUT/$name.tgz" -C /tmp/models "$name"
done
for log in /tmp/logs/*.log; do tr '\r' '\n' < "$log" | grep -v '^\s*$' > "$log.txt"; done
tar -czf "$OUT/logs.tgz" -C /tmp/logs $(cd /tmp/logs && ls *.log.txt)
for log in /tmp/logs/*.log.txt; do echo "== $log"; grep -E "Epoch|saved|Error|error" "$log" | tail -4; done
ls -la "$OUT"
