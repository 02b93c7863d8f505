"""What each token id contributes to decoded text, worked out once per tokenizer.

`tokenizers.Tokenizer.decode(ids)` maps ids to token strings, drops special tokens when asked,
then runs the decoder of tokenizer.json over the whole list. Every decoder real models use is
*local*: a token's output depends only on the token and on whether it is the first one decoded,
except for two effects that span tokens, which the detokenizer handles as state:

- byte-level BPE (GPT-2, Qwen, Llama-3) maps each token to raw bytes; a character may be split
  across tokens, and the joined bytes are decoded as UTF-8 with U+FFFD for invalid sequences;
- SentencePiece byte fallback (Llama-2, Mistral, TinyLlama) spells rare characters as
  `<0xE4><0xBD><0xA0>`: a *run* of such tokens becomes its UTF-8 text if the whole run is valid,
  else one U+FFFD per byte token; and a final `Strip(" ", 1, 0)` removes the first space of the
  whole text.

`token_pieces(backend)` simulates the decoder on every token once and returns `TokenPieces`:
plain lists of bytes and flags that both detokenizers (the Python twin and the Rust kernel)
consume. The simulation is checked against `tokenizers` itself by the parity tests.

    decoder step            per token (first / later)            across tokens
    ByteLevel               chars -> bytes (GPT-2 byte alphabet)  UTF-8 over all bytes
    Replace(str, str)       str.replace                           -
    Metaspace               first: drop "▁"; later: "▁" -> " "    -
    WordPiece               first: as is; later: "##x" -> "x", "x" -> " x"; cleanup
    ByteFallback            "<0xNN>" -> byte NN                   runs, all or nothing
    Fuse                    -                                     (joining is implicit)
    Strip(c, n, 0)          after Fuse: -                         drop up to n leading c
    none                    first: as is; later: " " + token      -
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Iterable

from tokenizers import Tokenizer as BackendTokenizer

REPLACEMENT = "\ufffd"  # U+FFFD, what a decoder writes for bytes that are not valid UTF-8


@dataclasses.dataclass(frozen=True)
class TokenPieces:
    """Per-id decoding data for one tokenizer (index = token id; `len(pieces)` is the vocabulary).

    pieces:        bytes a token adds when it is not the first token decoded.
    first_pieces:  bytes when it is the first token decoded, or None when always equal to `pieces`.
    byte_values:   id -> byte for SentencePiece byte-fallback tokens (`<0xNN>`).
    special_ids:   ids dropped by `skip_special_tokens`.
    added_tokens:  id -> content of every added token (vLLM's `spaces_between_special_tokens=False`).
    missing_ids:   ids inside the range that name no token (decode drops them).
    strip_char, strip_count: a `Strip(strip_char, strip_count, 0)` applied to the whole text.
    """

    pieces: list[bytes]
    first_pieces: list[bytes] | None
    byte_values: dict[int, int]
    special_ids: frozenset[int]
    added_tokens: dict[int, str]
    missing_ids: frozenset[int]
    strip_char: str | None = None
    strip_count: int = 0


def token_pieces(backend: BackendTokenizer, special_ids: Iterable[int] = (),
                 vocab_size: int | None = None) -> TokenPieces:
    """Simulate `backend`'s decoder on each token id once.

    Args:
        backend: the `tokenizers.Tokenizer` (with its tokenizer.json decoder).
        special_ids: extra ids to treat as special (besides added tokens flagged special).
        vocab_size: the model's vocabulary, when larger than the tokenizer's (e.g. Qwen pads its
            embedding to 151,936 rows): the extra ids decode to nothing, as in `decode`.

    Raises:
        ValueError: the decoder uses a step whose output is not local to a token
            (e.g. `BPEDecoder`, `CTC`, a regex `Replace`), which the incremental kernels do not model.
    """
    decoder = None if backend.decoder is None else json.loads(backend.decoder.__getstate__())
    first, later, byte_fallback, strip = _compile_decoder(decoder)
    added = backend.get_added_tokens_decoder()  # id -> AddedToken
    size = max(vocab_size or 0, backend.get_vocab_size(with_added_tokens=True), max(added, default=-1) + 1)
    pieces: list[bytes] = []
    first_pieces: list[bytes] = []
    byte_values: dict[int, int] = {}
    missing: set[int] = set()
    for token_id in range(size):
        token = backend.id_to_token(token_id)
        if token is None:  # a hole in the vocabulary: decode silently drops it
            missing.add(token_id)
            token = ""
        pieces.append(later(token))
        if first is not None:
            first_pieces.append(first(token))
        value = _byte_fallback_value(token) if byte_fallback else None
        if value is not None:
            byte_values[token_id] = value
    special = {i for i, token in added.items() if token.special} | {int(i) for i in special_ids}
    return TokenPieces(
        pieces=pieces,
        first_pieces=None if first is None or first_pieces == pieces else first_pieces,
        byte_values=byte_values,
        special_ids=frozenset(i for i in special if 0 <= i < size),
        added_tokens={i: token.content for i, token in added.items()},
        missing_ids=frozenset(missing),
        strip_char=strip[0] if strip else None,
        strip_count=strip[1] if strip else 0,
    )


# -- the decoder, compiled to per-token functions ---------------------------------------------------

Step = Callable[[str], str]


def _compile_decoder(decoder: dict[str, Any] | None) -> tuple[Callable[[str], bytes] | None, Callable[[str], bytes],
                                                               bool, tuple[str, int] | None]:
    """decoder JSON -> (first-token bytes or None if the same, later-token bytes, ByteFallback?, Strip)."""
    if decoder is None:  # tokenizers joins the tokens with spaces
        return (lambda t: t.encode()), (lambda t: (" " + t).encode()), False, None
    steps = decoder["decoders"] if decoder["type"] == "Sequence" else [decoder]
    first_steps: list[Step] = []
    later_steps: list[Step] = []
    byte_level = byte_fallback = fused = first_differs = False
    strip: tuple[str, int] | None = None
    for step in steps:
        kind = step["type"]
        if strip is not None or (byte_level and kind != "Fuse" and kind != "Strip"):
            raise ValueError(f"decoder step {kind} after {'Strip' if strip else 'ByteLevel'} is not supported")
        if byte_fallback and kind not in ("Fuse", "Strip"):
            raise ValueError(f"decoder step {kind} after ByteFallback is not supported")
        if kind == "ByteLevel":
            byte_level = fused = True
        elif kind == "ByteFallback":
            byte_fallback = True
        elif kind == "Fuse":
            fused = True
        elif kind == "Strip" and fused and step.get("stop", 0) == 0:
            strip = (step["content"], int(step["start"]))
        elif kind == "Replace" and "String" in step["pattern"]:
            old, new = step["pattern"]["String"], step["content"]
            first_steps.append(lambda t, old=old, new=new: t.replace(old, new))
            later_steps.append(lambda t, old=old, new=new: t.replace(old, new))
        elif kind == "Metaspace":
            first_differs = True
            first_step, later_step = _metaspace(step)
            first_steps.append(first_step)
            later_steps.append(later_step)
        elif kind == "WordPiece":
            first_differs = True
            first_step, later_step = _wordpiece(step)
            first_steps.append(first_step)
            later_steps.append(later_step)
        else:
            raise ValueError(f"decoder step {kind} ({json.dumps(step)}) is not supported "
                             "by the incremental detokenizer")
    finish = _byte_level_bytes if byte_level else str.encode

    def run(token: str, chain: list[Step]) -> bytes:
        for step_fn in chain:
            token = step_fn(token)
        return finish(token)

    first = (lambda t: run(t, first_steps)) if first_differs else None
    return first, (lambda t: run(t, later_steps)), byte_fallback, strip


def _metaspace(step: dict[str, Any]) -> tuple[Step, Step]:
    """Metaspace: "▁" -> " ", except that the first token loses every "▁" (unless scheme "never")."""
    replacement = step.get("replacement", "▁")
    scheme = step.get("prepend_scheme") or ("always" if step.get("add_prefix_space", True) else "never")
    if scheme == "never":
        return (lambda t: t.replace(replacement, " ")), (lambda t: t.replace(replacement, " "))
    return (lambda t: t.replace(replacement, "")), (lambda t: t.replace(replacement, " "))


def _wordpiece(step: dict[str, Any]) -> tuple[Step, Step]:
    """WordPiece: later tokens lose the "##" prefix or gain a leading space; then the cleanup."""
    prefix, cleanup = step.get("prefix", "##"), step.get("cleanup", True)
    tidy = _wordpiece_cleanup if cleanup else (lambda t: t)

    def later(token: str) -> str:
        return tidy(token[len(prefix):] if token.startswith(prefix) else " " + token)

    return tidy, later


def _wordpiece_cleanup(text: str) -> str:
    """tokenizers' `cleanup`: the spaces English tokenization put before punctuation go away."""
    for old, new in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(old, new)
    return text


def _byte_fallback_value(token: str) -> int | None:
    """`<0xNN>` -> NN, parsed as tokenizers' ByteFallback does (6 characters, hex digits 3..5)."""
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        try:
            return int(token[3:5], 16)
        except ValueError:
            return None
    return None


# -- GPT-2's byte alphabet --------------------------------------------------------------------------


def _byte_alphabet() -> dict[str, int]:
    """The printable character GPT-2's byte-level BPE uses for each byte (char -> byte)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in chars:  # control bytes, space, etc. move to U+0100 and up
            chars[b] = chr(256 + shift)
            shift += 1
    return {c: b for b, c in chars.items()}


CHAR_TO_BYTE = _byte_alphabet()
# str.translate table: alphabet character -> the latin-1 character of its byte; characters below
# 256 that are not in the alphabet -> U+FFFF, so that encoding to latin-1 fails for them too.
_TO_LATIN1 = {**{i: "\uffff" for i in range(256)}, **{ord(c): chr(b) for c, b in CHAR_TO_BYTE.items()}}


def _byte_level_bytes(token: str) -> bytes:
    """A byte-level token's raw bytes; a token with a character outside the alphabet is its UTF-8."""
    try:
        return token.translate(_TO_LATIN1).encode("latin-1")
    except UnicodeEncodeError:
        return token.encode()
