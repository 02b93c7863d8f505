"""How much of a tool call's arguments can be streamed before the call is complete.

A client that streams tool calls concatenates the `arguments` pieces it receives; when the call
ends, the concatenation must equal what the non-streaming response carries, which is
`json.dumps(arguments, ensure_ascii=False)` of the parsed value (vLLM re-serialises the same way).
The model's raw text may differ from that (other spacing, `1.50` for `1.5`), so the server cannot
forward raw text. Instead it streams the *stable prefix*: the start of the canonical serialisation
that the text seen so far already fixes, whatever comes next.

`stable_prefix('{"city": "Par')` is `'{"city": "Par'`: a string's characters are fixed as they
arrive. `stable_prefix('{"n": 12')` is `'{"n": '`: the number may still grow. Closing brackets,
separators and literals are emitted once they are seen whole. The scan stops at the first thing
that is not JSON; the rest of the call is then sent when it closes (or never, if it never parses).
"""

from __future__ import annotations

import json
import re

_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERALS = {"true": "true", "false": "false", "null": "null"}
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_WHITESPACE = " \t\r\n"


def _scan_string(text: str, start: int) -> tuple[str, int, bool]:
    """The string whose opening quote is at `start`: (decoded so far, index after it, closed?)."""
    chars, i = [], start + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(chars), i + 1, True
        if c != "\\":
            chars.append(c)
            i += 1
            continue
        if i + 1 >= len(text):
            break  # an escape cut in half
        code = text[i + 1]
        if code in _ESCAPES:
            chars.append(_ESCAPES[code])
            i += 2
        elif code == "u" and i + 6 <= len(text) and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6]):
            unit = int(text[i + 2:i + 6], 16)
            if 0xD800 <= unit < 0xDC00:  # a high surrogate: wait for its pair
                low = text[i + 6:i + 12]
                if len(low) < 6 or not re.fullmatch(r"\\u[dD][c-fC-F][0-9a-fA-F]{2}", low):
                    break
                unit = 0x10000 + ((unit - 0xD800) << 10) + (int(low[2:], 16) - 0xDC00)
                i += 6
            chars.append(chr(unit))
            i += 6
        else:
            break  # cut in half, or not JSON: stop here either way
    return "".join(chars), i, False


def stable_prefix(text: str) -> str:
    """The prefix of the canonical serialisation of the JSON value that `text` starts."""
    out: list[str] = []
    stack: list[str] = []  # open containers, "{" or "["
    expect = "value"  # value | first_value (after "[") | first_key (after "{") | key | colon | next
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _WHITESPACE:
            i += 1
            continue
        closing = {"{": "}", "[": "]"}.get(stack[-1]) if stack else None
        if c == closing and expect in ("next", "first_key", "first_value"):
            out.append(c)
            stack.pop()
            i += 1
            if not stack:
                break
            expect = "next"
        elif expect == "next":
            if c != ",":
                break
            out.append(", ")
            i += 1
            expect = "key" if stack[-1] == "{" else "value"
        elif expect == "colon":
            if c != ":":
                break
            out.append(": ")
            i += 1
            expect = "value"
        elif expect in ("key", "first_key"):
            if c != '"':
                break
            key, i, closed = _scan_string(text, i)
            out.append(json.dumps(key, ensure_ascii=False)[:None if closed else -1])
            if not closed:
                break
            expect = "colon"
        else:  # a value
            if c in "{[":
                out.append(c)
                stack.append(c)
                i += 1
                expect = "first_key" if c == "{" else "first_value"
                continue
            if c == '"':
                value, i, closed = _scan_string(text, i)
                out.append(json.dumps(value, ensure_ascii=False)[:None if closed else -1])
                if not closed:
                    break
            else:
                match = _NUMBER.match(text, i)
                word = next((w for w in _LITERALS if text.startswith(w, i)), None)
                if word is not None:
                    out.append(_LITERALS[word])
                    i += len(word)
                elif match and match.end() < n and text[match.end()] in _WHITESPACE + ",]}":  # whole once ended
                    out.append(json.dumps(json.loads(match.group())))
                    i = match.end()
                else:
                    break
            if not stack:
                break
            expect = "next"
    return "".join(out)


def arguments_start(call_text: str) -> int | None:
    """Where the value of the top-level "arguments" (or "parameters") key starts in a call's text."""
    depth, i = 0, 0
    while i < len(call_text):
        c = call_text[i]
        if c == '"':
            key, end, closed = _scan_string(call_text, i)
            if not closed:
                return None
            rest = call_text[end:].lstrip(_WHITESPACE)
            if depth == 1 and key in ("arguments", "parameters") and rest.startswith(":"):
                value = rest[1:].lstrip(_WHITESPACE)
                return len(call_text) - len(value) if value else None
            i = end
            continue
        depth += c in "{["
        depth -= c in "}]"
        i += 1
    return None
