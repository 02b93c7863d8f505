"""Tokenizer: a Hugging Face tokenizer folder, read with the `tokenizers` library.

`tokenizer.json` holds the model (BPE, SentencePiece-style BPE with byte fallback, WordPiece...),
its pre-tokenizer, post-processor (e.g. Llama's BOS) and decoder; `tokenizer_config.json` adds
the special tokens by name, the chat template, and flags such as `add_bos_token`. This wrapper
gives the small surface the engine needs, with transformers' meaning for each call, so prompt
ids match `AutoTokenizer` token for token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as BackendTokenizer
from tokenizers import pre_tokenizers

from pyengine.text.chat_template import ChatTemplateError, render_chat_template

SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token")


class Tokenizer:
    """Encode, decode and chat-template rendering for one checkpoint's tokenizer."""

    def __init__(self, backend: BackendTokenizer, config: dict[str, Any], chat_template: Any = None):
        self.backend_tokenizer = backend
        self.config = config
        self.special_tokens = {name: _token_content(config.get(name)) for name in SPECIAL_TOKEN_NAMES}
        self.chat_templates = _named_templates(chat_template if chat_template is not None
                                               else config.get("chat_template"))
        self.model_max_length = config.get("model_max_length")
        special = {t.content for t in backend.get_added_tokens_decoder().values() if t.special}
        special |= {v for v in self.special_tokens.values() if v is not None}
        special |= {_token_content(t) for t in config.get("additional_special_tokens") or []}
        self.all_special_ids = frozenset(i for t in special if (i := backend.token_to_id(t)) is not None)
        self._add_bos = bool(config.get("add_bos_token")) and not _post_processor_adds_bos(backend)
        self._add_eos = bool(config.get("add_eos_token"))

    @classmethod
    def from_pretrained(cls, path: str | Path, legacy: bool | None = None) -> "Tokenizer":
        """Load `path/tokenizer.json` and `path/tokenizer_config.json` (+ `chat_template.jinja`).

        `legacy` overrides tokenizer_config.json's flag of that name for SentencePiece-style
        Llama tokenizers (see `_match_transformers_llama`).

        Raises:
            FileNotFoundError: no tokenizer.json in the folder.
            ValueError: a file that is not valid JSON or not a tokenizer.
        """
        path = Path(path)
        file = path / "tokenizer.json"
        if not file.is_file():
            raise FileNotFoundError(f"{file} not found (pyengine needs a fast tokenizer.json)")
        try:
            backend = BackendTokenizer.from_file(str(file))
        except Exception as exc:  # the tokenizers library raises its own exception type
            raise ValueError(f"{file} is not a valid tokenizer: {exc}") from exc
        config = _read_json(path / "tokenizer_config.json")
        if legacy is not None:
            config["legacy"] = legacy
        _match_transformers_llama(backend, config)
        template = None
        jinja_file = path / "chat_template.jinja"
        if jinja_file.is_file():
            template = jinja_file.read_text(encoding="utf-8")
        return cls(backend, config, template)

    # -- ids -------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def bos_token_id(self) -> int | None:
        return self._id(self.special_tokens["bos_token"])

    @property
    def eos_token_id(self) -> int | None:
        return self._id(self.special_tokens["eos_token"])

    def is_special(self, token_id: int) -> bool:
        return token_id in self.all_special_ids

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids
        if add_special_tokens and self._add_bos and self.bos_token_id is not None:
            ids = [self.bos_token_id] + ids
        if add_special_tokens and self._add_eos and self.eos_token_id is not None:
            ids = ids + [self.eos_token_id]
        return ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.backend_tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str | None]:
        return [self.backend_tokenizer.id_to_token(i) for i in ids]

    # -- chat --------------------------------------------------------------------------------------

    @property
    def chat_template(self) -> str | None:
        return self.chat_templates.get("default")

    def apply_chat_template(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        documents: list[dict[str, Any]] | None = None,
        add_generation_prompt: bool = False,
        continue_final_message: bool = False,
        chat_template: str | None = None,
        tokenize: bool = False,
        **template_kwargs: Any,
    ) -> str | list[int]:
        """Render the conversation (and tokenize it without adding special tokens, as vLLM does).

        Raises:
            ChatTemplateError: no template, or the template fails.
        """
        template = chat_template or self._pick_template(tools)
        if template is None:
            raise ChatTemplateError("this tokenizer has no chat template; pass chat_template=...")
        text = render_chat_template(
            template, messages, tools=tools, documents=documents,
            add_generation_prompt=add_generation_prompt, continue_final_message=continue_final_message,
            special_tokens=self.special_tokens, **template_kwargs,
        )
        return self.encode(text, add_special_tokens=False) if tokenize else text

    def _pick_template(self, tools: Any) -> str | None:
        if tools and "tool_use" in self.chat_templates:
            return self.chat_templates["tool_use"]
        return self.chat_templates.get("default")

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self.backend_tokenizer.token_to_id(token)


def _match_transformers_llama(backend: BackendTokenizer, config: dict[str, Any]) -> None:
    """Rebuild a SentencePiece-style Llama tokenizer's space handling as transformers does.

    Older tokenizer.json files prepend "▁" with a normalizer, which runs again after every
    special token ("</s>\n" -> "</s>", "▁", "\n"). transformers (5.x) rebuilds LlamaTokenizer with
    a Metaspace pre-tokenizer that prepends only to the first piece, so a chat template's
    "</s>\n" tokenizes without the extra "▁"; we do the same, or prompt ids differ from vLLM's.
    With `legacy: true` the file's own behaviour is kept (the sentencepiece-era ids, which is
    what llama.cpp's test vectors record: they differ for texts starting with spaces).
    """
    if config.get("tokenizer_class") not in ("LlamaTokenizer", "LlamaTokenizerFast"):
        return
    normalizer = json.loads(backend.to_str()).get("normalizer") or {}
    steps = normalizer.get("normalizers", [normalizer])
    if not any(step.get("type") == "Prepend" for step in steps):
        return
    if config.get("legacy") is True:
        return
    scheme = "never" if config.get("add_prefix_space") is False else "first"
    backend.normalizer = None
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=False)


def _token_content(value: Any) -> str | None:
    """Special tokens are strings or AddedToken dicts ({"content": ...})."""
    if isinstance(value, dict):
        return value.get("content")
    return value


def _named_templates(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {"default": value}
    return {item["name"]: item["template"] for item in value}  # [{"name", "template"}, ...]


def _post_processor_adds_bos(backend: BackendTokenizer) -> bool:
    """Whether tokenizer.json's post-processor already inserts BOS (Llama-style TemplateProcessing)."""
    processor = json.loads(backend.to_str()).get("post_processor") or {}
    return bool(processor.get("single"))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must contain a JSON object")
    return data
