"""Reasoning parsers: split `<think>...</think>` out of the model's text into `message.reasoning`.

Thinking models (DeepSeek-R1, Qwen3, QwQ) write their chain of thought between `<think>` and
`</think>`, then the answer. Two template styles exist: the model writes `<think>` itself, or
the chat template ends the prompt with an open `<think>` so the output holds only `</think>`.
This parser handles both: it starts *inside* reasoning when the prompt ends in an open think
block, and otherwise enters reasoning only if the output opens with `<think>`. A think block
that never closes (the model ran out of tokens) is all reasoning. Qwen3's
`enable_thinking: false` renders a closed empty block into the prompt, so the output is content.

One state machine serves both paths: streaming feeds it deltas; the complete response feeds it
the whole text at once, so the two always agree. Tags split across deltas are held back until
they can be told apart from text (`<thi` might become `<think>`).

Three parsers, chosen with `--reasoning-parser` under vLLM's names (`reasoning_parser_class`):

- `think` (used by `auto` when the chat template knows the tags): the rules above.
- `deepseek_r1`: DeepSeek-R1 and its distills. Their templates put `<think>` at the end of the
  prompt in some versions and not in others, and the model may or may not repeat it, so the
  output is reasoning from its first character until `</think>` whatever the prompt says; a
  leading `<think>` in the output is dropped. An output with no `</think>` is all reasoning.
- `qwen3`: Qwen3, whose switch `enable_thinking` decides whether the model thinks at all. The
  rules of `think`, except that a think block must close to count: in the complete response,
  an output that opened a think block and never closed it is all content, tags included (a
  stream has already sent that text as reasoning by then, and cannot take it back).
"""

from __future__ import annotations

import dataclasses

START, END = "<think>", "</think>"


@dataclasses.dataclass
class ReasoningDelta:
    reasoning: str = ""
    content: str = ""


def prompt_opens_reasoning(prompt_text: str) -> bool:
    """Whether the rendered prompt ends inside a think block (the template opened it)."""
    return prompt_text.rfind(START) > prompt_text.rfind(END)


def template_uses_reasoning(chat_template: str | None) -> bool:
    """Parse reasoning by default for chat templates that know the think tags."""
    return bool(chat_template) and START in chat_template


class ThinkReasoningParser:
    """Streams text in, `ReasoningDelta`s out; `finish()` flushes what was held back."""

    name = "think"

    # Where output goes that does not open with <think>, when the prompt left no block open
    fallback = "content"

    def __init__(self, prompt_text: str = ""):
        # "undecided": output so far could still be the opening <think>; "reasoning"; "content".
        self.state = "reasoning" if prompt_opens_reasoning(prompt_text) else "undecided"
        self.pending = ""  # text held back: a possible partial tag

    def feed(self, text: str) -> ReasoningDelta:
        out = ReasoningDelta()
        self.pending += text
        while self.pending:
            if self.state == "undecided":
                stripped = self.pending.lstrip()
                if stripped.startswith(START):
                    self.state, self.pending = "reasoning", stripped[len(START):]
                elif START.startswith(stripped):
                    break  # whitespace or a prefix of <think>: wait for more
                else:
                    self.state = self.fallback
            elif self.state == "reasoning":
                end = self.pending.find(END)
                if end >= 0:
                    out.reasoning += self.pending[:end]
                    self.state, self.pending = "content", self.pending[end + len(END):]
                    continue
                keep = _partial_tag_length(self.pending, END)
                out.reasoning += self.pending[:len(self.pending) - keep]
                self.pending = self.pending[len(self.pending) - keep:]
                break
            else:  # content: everything after the think block is the answer
                out.content += self.pending
                self.pending = ""
        return out

    def finish(self) -> ReasoningDelta:
        """End of output: held-back text goes where the state says."""
        text, self.pending = self.pending, ""
        if self.state == "reasoning":
            return ReasoningDelta(reasoning=text)
        return ReasoningDelta(content=text)

    def parse(self, text: str) -> tuple[str | None, str | None]:
        """The complete response: (reasoning, content), each None when empty (vLLM's shape)."""
        first, last = self.feed(text), self.finish()
        reasoning = first.reasoning + last.reasoning
        content = first.content + last.content
        saw_reasoning = self.state == "reasoning" or bool(reasoning) or END in text or START in text
        return (reasoning if saw_reasoning else None), (content or None)


class DeepSeekR1ReasoningParser(ThinkReasoningParser):
    """DeepSeek-R1: reasoning from the first character to `</think>` (a leading `<think>` dropped)."""

    name = "deepseek_r1"
    fallback = "reasoning"

    def __init__(self, prompt_text: str = ""):
        super().__init__(prompt_text)
        self.state = "undecided"  # the prompt's open tag, if any, changes nothing: both ways it is reasoning


class Qwen3ReasoningParser(ThinkReasoningParser):
    """Qwen3: the `think` rules, but an unclosed think block is content in the complete response."""

    name = "qwen3"

    def parse(self, text: str) -> tuple[str | None, str | None]:
        reasoning, content = super().parse(text)
        if self.state == "reasoning":  # the block never closed
            return None, text or None
        return reasoning, content


REASONING_PARSERS: dict[str, type[ThinkReasoningParser]] = {
    parser.name: parser for parser in (ThinkReasoningParser, DeepSeekR1ReasoningParser, Qwen3ReasoningParser)
}


def reasoning_parser_class(name: str, chat_template: str | None) -> type[ThinkReasoningParser] | None:
    """The parser `--reasoning-parser NAME` selects: "none" -> None, "auto" -> `think` when the
    chat template uses the tags (else None), or one of REASONING_PARSERS by name.

    Raises:
        ValueError: an unknown name.
    """
    if name == "none":
        return None
    if name == "auto":
        return ThinkReasoningParser if template_uses_reasoning(chat_template) else None
    if name not in REASONING_PARSERS:
        raise ValueError(f"unknown reasoning parser {name!r}; known: auto, none, {', '.join(REASONING_PARSERS)}")
    return REASONING_PARSERS[name]


def _partial_tag_length(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
