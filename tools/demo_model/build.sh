#!/usr/bin/env bash
# The next demo model's recipe in one command, on this machine's CPU (two threads):
#
#     RUNS=runs bash tools/demo_model/build.sh
#
# Needs a Python with torch, transformers, tokenizers and pyengine installed (PYTHON, default python).
# It starts from the first edition's weights (the model shipped at FIRST_EDITION, read back from git),
# trains two stages with a 2,048-token context (tools named from the word lists, then half of their
# nouns made up), exports over pyengine/demo_model, evaluates it beside the first edition on the same
# prompts and refreshes the parity fixture. Corpora and data order are seeded.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}
RUNS=${RUNS:-runs}
FIRST_EDITION=0d32b72
mkdir -p "$RUNS/edition1"
for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
    git show "$FIRST_EDITION:pyengine/demo_model/$f" > "$RUNS/edition1/$f"
done
MODEL="--tokenizer $RUNS/edition1/tokenizer.json --hidden 256 --layers 4 --heads 8 --kv-heads 4 --intermediate 768"
"$PYTHON" corpus.py --seed 0 --n 80000 --made-up-share 0 --out "$RUNS/corpus5.jsonl"
# shellcheck disable=SC2086
"$PYTHON" train.py --corpus "$RUNS/corpus5.jsonl" $MODEL --context 2048 --workdir "$RUNS/run5" \
    --steps 1100 --lr 1.5e-3 --warmup 50 --threads 2 --init "$RUNS/edition1" --eval-every 250 --save-every 100
"$PYTHON" corpus.py --seed 0 --n 80000 --out "$RUNS/corpus6.jsonl"
# shellcheck disable=SC2086
"$PYTHON" train.py --corpus "$RUNS/corpus6.jsonl" $MODEL --context 2048 --workdir "$RUNS/run6" \
    --steps 1200 --lr 1e-3 --warmup 30 --threads 2 --init "$RUNS/run5/ckpt.pt" --eval-every 300 --save-every 100
"$PYTHON" export.py --workdir "$RUNS/run6" --tokenizer "$RUNS/edition1/tokenizer.json" --out ../../pyengine/demo_model
"$PYTHON" evaluate.py --model ../../pyengine/demo_model --previous "$RUNS/edition1" --n 200 \
    --train-corpus "$RUNS/corpus6.jsonl"
(cd ../.. && "$PYTHON" tools/demo_model/check_export.py --save-expected tests/fixtures/demo_model_expected.npz)
