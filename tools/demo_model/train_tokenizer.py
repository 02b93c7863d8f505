"""Train the demo model's byte-level BPE tokenizer on the rendered corpus.

    python tools/demo_model/train_tokenizer.py --corpus runs/corpus.jsonl \
        --out runs/tokenizer.json [--vocab-size 2048]

Layout of the vocabulary (ids are stable: the export and the template rely on them):

    0 <|endoftext|>   1 <|im_start|>   2 <|im_end|>          special (skipped when decoding)
    3 .. V-7          256 byte symbols, then the BPE merges
    V-6 .. V-1        <think> </think> <tool_call> </tool_call> <tool_response> </tool_response>
                      added tokens that are NOT special, so they stay in decoded text (as in Qwen)

Pre-tokenization (`WORDS`) decides what a model this small can copy:
- every digit is a token of its own, so numbers are spelled digit by digit and column arithmetic is
  learnable for a model of a few million weights;
- a space is a token of its own, never the start of the word after it (GPT-2's byte-level regex
  makes " next" one token and "next" another), and words split before a capital letter and at
  punctuation. So a word is the same tokens wherever it stands: "next krubrulen" in the user's
  request and "next_krubrulen" in the call's JSON share "next" and "kr ubr ul en", and writing the
  key is copying tokens the prompt already holds. With the GPT-2 split the model would have to
  learn the spelling of " next" to write "next", which it cannot for a word it has never seen.
  The price is about 13% more tokens per conversation.
"""

from __future__ import annotations

import argparse
import json

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from render import render_conversation

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TAG_TOKENS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
# a lower-case run with at most one capital before it, a capitals run, other letters, one digit, one
# whitespace character, a punctuation run: BPE merges only inside these pieces
WORDS = r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\p{L}+|\p{N}|\s|[^\s\p{L}\p{N}]+"


def build_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(WORDS), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train(texts, vocab_size: int) -> Tokenizer:
    tokenizer = build_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(TAG_TOKENS), special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2, show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAG_TOKENS])
    if tokenizer.get_vocab_size() != vocab_size:
        raise SystemExit(f"got {tokenizer.get_vocab_size()} tokens, wanted {vocab_size}: the corpus is too small")
    return tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--vocab-size", type=int, default=2048)
    args = parser.parse_args()
    with open(args.corpus, encoding="utf-8") as f:
        texts = [render_conversation(json.loads(line)) for line in f]
    tokenizer = train(texts, args.vocab_size)
    tokenizer.save(args.out)
    sample = tokenizer.encode(texts[0])
    print(f"vocab {tokenizer.get_vocab_size()}; first conversation: {len(texts[0])} chars -> {len(sample.ids)} tokens")


if __name__ == "__main__":
    main()
