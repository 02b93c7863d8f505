#!/usr/bin/env bash
# The second edition of the demo model in one command, from scratch, on this machine's CPU (two threads):
#
#     RUNS=runs bash tools/demo_model/build.sh
#
# Needs a Python with torch, transformers, tokenizers and pyengine installed (PYTHON, default python).
# It reads the first edition back from git (its figures stand beside the new ones in RESULTS.md),
# writes the corpus (copying drills among the tasks), trains a tokenizer whose words are the same
# tokens wherever they stand, then trains a 6-layer model in four stages: copying on random tokens,
# copying of words said back, every task with short conversations first and prompts up to 2,048
# tokens later, then every task again with the loss on the replies alone. It exports over
# pyengine/demo_model, evaluates the export beside the first edition on the same prompts and
# refreshes the parity fixture. Corpus, initial weights and data order are seeded; rerunning the
# command after an interruption resumes the training from its last checkpoint (a finished stage is
# not run again).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}
RUNS=${RUNS:-runs}
FIRST_EDITION=0d32b72
SHAPE="--hidden 256 --layers 6 --heads 8 --kv-heads 4 --intermediate 704"  # the model train.py trains in stages 2-4
mkdir -p "$RUNS/edition1"
for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
    git show "$FIRST_EDITION:pyengine/demo_model/$f" > "$RUNS/edition1/$f"
done
[ -f "$RUNS/corpus.jsonl" ] || "$PYTHON" corpus.py --seed 0 --n 100000 --out "$RUNS/corpus.jsonl"
[ -f "$RUNS/tokenizer.json" ] || "$PYTHON" train_tokenizer.py --corpus "$RUNS/corpus.jsonl" --out "$RUNS/tokenizer.json"
# 1. copying by content, on random token ids said again (about 15 minutes)
[ -f "$RUNS/copying.pt" ] || "$PYTHON" induction.py --layers 6 --alphabet 2038 --steps 1600 --threads 2 \
    --save "$RUNS/copying.pt"
# 2. the same copying across the corpus's words and spaces: pieces said back (about 6 minutes)
[ -f "$RUNS/echo.jsonl" ] || "$PYTHON" corpus.py --seed 1 --n 30000 --tasks echo --out "$RUNS/echo.jsonl"
"$PYTHON" train.py --init "$RUNS/copying.pt" --corpus "$RUNS/echo.jsonl" --tokenizer "$RUNS/tokenizer.json" \
    --workdir "$RUNS/echo" $SHAPE --context 512 \
    --prompt-weight 0 --steps 300 --lr 3e-3 --warmup 50 --save-every 100 --eval-every 100 --seed 0 --threads 2
# 3. every task, up to 2,048 tokens
"$PYTHON" train.py --init "$RUNS/echo/ckpt.pt" --corpus "$RUNS/corpus.jsonl" --tokenizer "$RUNS/tokenizer.json" \
    --workdir "$RUNS/edition2" $SHAPE --context 2048 \
    --length-schedule 512:0.4,1024:0.7 --prompt-weight 0.25 --steps 4000 --lr 3e-3 --warmup 100 \
    --save-every 100 --eval-every 500 --seed 0 --threads 2
# 4. every task again, every length, the loss on the replies alone: the prompts taught copying, the
#    replies are what is left to learn (additions, values copied into calls and JSON)
"$PYTHON" train.py --init "$RUNS/edition2/ckpt.pt" --corpus "$RUNS/corpus.jsonl" --tokenizer "$RUNS/tokenizer.json" \
    --workdir "$RUNS/replies" $SHAPE --context 2048 \
    --prompt-weight 0 --steps 4000 --lr 1.5e-3 --warmup 100 --save-every 100 --eval-every 500 --seed 1 --threads 2
"$PYTHON" probe.py --checkpoint "$RUNS/replies/ckpt.pt" --tokenizer "$RUNS/tokenizer.json" --threads 2
"$PYTHON" export.py --workdir "$RUNS/replies" --tokenizer "$RUNS/tokenizer.json" --out ../../pyengine/demo_model
"$PYTHON" evaluate.py --model ../../pyengine/demo_model --previous "$RUNS/edition1" --n 200 \
    --train-corpus "$RUNS/corpus.jsonl"
(cd ../.. && "$PYTHON" tools/demo_model/check_export.py --save-expected tests/fixtures/demo_model_expected.npz)
