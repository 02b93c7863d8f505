#!/usr/bin/env bash
# The second edition of the demo model in one command, from scratch, on this machine's CPU (two threads):
#
#     RUNS=runs bash tools/demo_model/build.sh
#
# Needs a Python with torch, transformers, tokenizers and pyengine installed (PYTHON, default python).
# It reads the first edition back from git (its figures stand beside the new ones in RESULTS.md),
# writes the corpus (copying drills among the tasks from the first step), trains a tokenizer whose
# words are the same tokens wherever they stand, trains a 6-layer model from random weights with
# short conversations first and prompts up to 2,048 tokens later, exports over pyengine/demo_model, evaluates it beside the first edition on the same prompts
# and refreshes the parity fixture. Corpus, initial weights and data order are seeded; rerunning the
# command after an interruption resumes the training from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}
RUNS=${RUNS:-runs}
FIRST_EDITION=0d32b72
mkdir -p "$RUNS/edition1"
for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
    git show "$FIRST_EDITION:pyengine/demo_model/$f" > "$RUNS/edition1/$f"
done
[ -f "$RUNS/corpus.jsonl" ] || "$PYTHON" corpus.py --seed 0 --n 100000 --out "$RUNS/corpus.jsonl"
[ -f "$RUNS/tokenizer.json" ] || "$PYTHON" train_tokenizer.py --corpus "$RUNS/corpus.jsonl" --out "$RUNS/tokenizer.json"
"$PYTHON" train.py --corpus "$RUNS/corpus.jsonl" --tokenizer "$RUNS/tokenizer.json" --workdir "$RUNS/edition2" \
    --hidden 256 --layers 6 --heads 8 --kv-heads 4 --intermediate 704 --context 2048 \
    --length-schedule 512:0.4,1024:0.7 --prompt-weight 0.25 --steps 4000 --lr 3e-3 --warmup 100 \
    --save-every 100 --eval-every 500 --seed 0 --threads 2
"$PYTHON" probe.py --checkpoint "$RUNS/edition2/ckpt.pt" --tokenizer "$RUNS/tokenizer.json" --threads 2
"$PYTHON" export.py --workdir "$RUNS/edition2" --tokenizer "$RUNS/tokenizer.json" --out ../../pyengine/demo_model
"$PYTHON" evaluate.py --model ../../pyengine/demo_model --previous "$RUNS/edition1" --n 200 \
    --train-corpus "$RUNS/corpus.jsonl"
(cd ../.. && "$PYTHON" tools/demo_model/check_export.py --save-expected tests/fixtures/demo_model_expected.npz)
