"""Tokenizer: a Hugging Face tokenizer folder, read with the `tokenizers` library.

Contract: `Tokenizer.from_pretrained(folder)` gives the ids, special tokens and chat prompts that
transformers 5's `AutoTokenizer.from_pretrained(folder)` gives, token for token, from the same
files: `tokenizer.json` (the model, normalizer, pre-tokenizer, post-processor that adds BOS, and
decoder), `tokenizer_config.json` (special tokens by name, chat template, class-specific flags),
and where present `special_tokens_map.json` (older layout) and `chat_template.jinja` plus
`additional_chat_templates/*.jinja` (newer layout). Nothing here knows about models or requests.

Two places where transformers 5 does more than read `tokenizer.json`, and so do we:
- A SentencePiece-style Llama tokenizer (`LlamaTokenizer`) is rebuilt with a Metaspace
  pre-tokenizer that puts "▁" before the first piece only, so "</s>\\n" encodes as [2, 13] rather
  than the file's [2, 29871, 13] (`use_file_pipeline=True` keeps the file's own behaviour, which is
  sentencepiece's, transformers 4's and llama.cpp's).
- `add_bos_token` / `add_eos_token` in tokenizer_config.json are ignored when tokenizer.json exists:
  its post-processor alone decides whether BOS is added, so BOS is never added twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as BackendTokenizer
from tokenizers import decoders, pre_tokenizers

from pyengine.text.chat_template import ChatTemplateError, render_chat_template

# The named special tokens transformers passes to chat templates (its SPECIAL_TOKENS_ATTRIBUTES).
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

# Defaults the transformers tokenizer classes fill in when tokenizer_config.json names no token.
_CLASS_DEFAULTS = {
    "LlamaTokenizer": {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"},
    "GPT2Tokenizer": {"unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
    "Qwen2Tokenizer": {"unk_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"},
}
# Without tokenizer_class, AutoTokenizer picks the class from config.json's model_type.
_MODEL_TYPE_CLASSES = {"llama": "LlamaTokenizer", "gpt2": "GPT2Tokenizer", "qwen2": "Qwen2Tokenizer",
                       "qwen3": "Qwen2Tokenizer"}


class Tokenizer:
    """Encode, decode and chat-template rendering for one checkpoint's tokenizer.

    `backend_tokenizer` is the underlying `tokenizers.Tokenizer` (kernels build byte tables from it);
    `config` is tokenizer_config.json with the special tokens resolved as transformers resolves them.
    """

    def __init__(self, backend: BackendTokenizer, config: dict[str, Any],
                 chat_templates: dict[str, str] | None = None):
        self.backend_tokenizer = backend
        self.config = config
        named = {name: _token_content(config.get(name)) for name in SPECIAL_TOKEN_NAMES}
        self.special_tokens: dict[str, str] = {name: token for name, token in named.items() if token is not None}
        self.chat_templates = dict(chat_templates) if chat_templates is not None else \
            _named_templates(config.get("chat_template"), "tokenizer_config.json")
        self.model_max_length: int | None = config.get("model_max_length")
        # Special = flagged special in tokenizer.json or tokenizer_config.json, or named in the config.
        special = {t.content for t in backend.get_added_tokens_decoder().values() if t.special}
        special |= {_token_content(t) for t in (config.get("added_tokens_decoder") or {}).values()
                    if isinstance(t, dict) and t.get("special")}
        special |= set(self.special_tokens.values())
        for key in ("additional_special_tokens", "extra_special_tokens"):
            extra = config.get(key) or []
            special |= {_token_content(t) for t in (extra.values() if isinstance(extra, dict) else extra)}
        self.all_special_ids = frozenset(i for t in special if t and (i := backend.token_to_id(t)) is not None)

    @classmethod
    def from_pretrained(cls, path: str | Path, *, use_file_pipeline: bool = False) -> "Tokenizer":
        """Load the tokenizer folder at `path` (a Hugging Face checkpoint or tokenizer folder).

        Args:
            path: folder holding tokenizer.json and usually tokenizer_config.json.
            use_file_pipeline: run tokenizer.json exactly as written, skipping transformers 5's
                rebuild of SentencePiece-style Llama tokenizers (see the module docstring).

        Raises:
            FileNotFoundError: `path` is not a folder, or it has no tokenizer.json.
            ValueError: a file that is not valid JSON, not a tokenizer, or malformed.
        """
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a folder (expected a Hugging Face tokenizer folder)")
        file = path / "tokenizer.json"
        if not file.is_file():
            raise FileNotFoundError(f"{file} not found (pyengine needs a fast tokenizer.json)")
        try:
            backend = BackendTokenizer.from_file(str(file))
        except Exception as exc:  # the tokenizers library raises its own exception type
            raise ValueError(f"{file} is not a valid tokenizer.json: {exc}") from exc
        config = _read_json(path / "tokenizer_config.json")
        if "added_tokens_decoder" not in config:  # older layout: special_tokens_map.json overrides
            config.update(_read_json(path / "special_tokens_map.json"))
        class_name = _tokenizer_class(path, config)
        for name, token in _CLASS_DEFAULTS.get(class_name, {}).items():
            if name not in config and backend.token_to_id(token) is not None:
                config[name] = token
        if class_name == "LlamaTokenizer" and not use_file_pipeline:
            _rebuild_llama_pipeline(backend, config)
        templates = _read_template_files(path)
        if not templates:
            templates = _named_templates(config.get("chat_template"), path / "tokenizer_config.json")
        return cls(backend, config, templates)

    # -- ids ---------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (transformers' `len(tokenizer)`)."""
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def bos_token_id(self) -> int | None:
        return self._id(self.special_tokens.get("bos_token"))

    @property
    def eos_token_id(self) -> int | None:
        return self._id(self.special_tokens.get("eos_token"))

    def is_special(self, token_id: int) -> bool:
        """Whether `token_id` is a special token (skipped by `decode(skip_special_tokens=True)`)."""
        return token_id in self.all_special_ids

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Text -> ids; `add_special_tokens` lets tokenizer.json's post-processor add BOS/EOS.

        The batch call gives the same ids and lets other Python threads run while it works, so a
        long text tokenized on a worker thread does not hold up a server's event loop.
        """
        return self.backend_tokenizer.encode_batch([text], add_special_tokens=add_special_tokens)[0].ids

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Ids -> text (transformers 5 never applies `clean_up_tokenization_spaces` to BPE); the
        batch call, for the same reason as `encode`."""
        return self.backend_tokenizer.decode_batch([[int(i) for i in ids]], skip_special_tokens=skip_special_tokens)[0]

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str | None]:
        """Ids -> vocabulary strings ("▁Hello", "Ġworld"); None for an id outside the vocabulary."""
        return [self.backend_tokenizer.id_to_token(int(i)) for i in ids]

    # -- chat --------------------------------------------------------------------------------------

    @property
    def chat_template(self) -> str | None:
        """The default chat template, or None when the checkpoint has none."""
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
        """Render the conversation; with `tokenize`, return its ids (no BOS added, as vLLM does).

        `chat_template` is a template's source or the name of one of this tokenizer's templates;
        by default the "tool_use" template is used when `tools` are given and it exists, else
        "default". Other arguments are those of `render_chat_template`.

        Raises:
            ChatTemplateError: no template to use, or the template fails.
        """
        template = self._pick_template(chat_template, tools)
        text = render_chat_template(
            template, messages, tools=tools, documents=documents,
            add_generation_prompt=add_generation_prompt, continue_final_message=continue_final_message,
            special_tokens=self.special_tokens, **template_kwargs,
        )
        # The template writes BOS itself where the model wants it; adding it again would double it.
        return self.encode(text, add_special_tokens=False) if tokenize else text

    def _pick_template(self, chat_template: str | None, tools: Any) -> str:
        """transformers' get_chat_template: a name or a source, else tool_use / default."""
        if chat_template is not None:
            return self.chat_templates.get(chat_template, chat_template)
        if tools is not None and "tool_use" in self.chat_templates:
            return self.chat_templates["tool_use"]
        if "default" in self.chat_templates:
            return self.chat_templates["default"]
        if self.chat_templates:
            raise ChatTemplateError(f"this tokenizer has several chat templates and no default; pass "
                                    f"chat_template= one of {sorted(self.chat_templates)}")
        raise ChatTemplateError("this tokenizer has no chat template; pass chat_template=...")

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self.backend_tokenizer.token_to_id(token)


# -- loading helpers -------------------------------------------------------------------------------


def _rebuild_llama_pipeline(backend: BackendTokenizer, config: dict[str, Any]) -> None:
    """Give a SentencePiece-style Llama tokenizer the pipeline transformers 5's LlamaTokenizer builds.

    Older files prepend "▁" with a normalizer, which runs again after every special token
    ("</s>\\n" -> "</s>", "▁\\n"). transformers 5 drops the normalizer and uses a Metaspace
    pre-tokenizer: "▁" before the first piece only (or before every piece that lacks one when
    `legacy` is true, or never when `add_prefix_space` is false), which is what vLLM then sees.
    """
    spec = json.loads(backend.to_str())
    normalizer = spec.get("normalizer") or {}
    steps = normalizer.get("normalizers", [normalizer])
    is_spm = any(s.get("type") == "Prepend" for s in steps) or \
        (spec.get("pre_tokenizer") or {}).get("type") == "Metaspace"
    if not is_spm:  # a ByteLevel file mislabelled LlamaTokenizer: transformers keeps it as is
        return
    add_prefix_space = config.get("add_prefix_space") is not False
    scheme = ("always" if config.get("legacy") is True else "first") if add_prefix_space else "never"
    backend.normalizer = None
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=False)
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    backend.decoder = decoders.Sequence(steps + [decoders.Strip(" ", 1, 0)] if add_prefix_space else steps)


def _tokenizer_class(path: Path, config: dict[str, Any]) -> str | None:
    """tokenizer_config.json's tokenizer_class ("...Fast" dropped), else config.json's model_type's."""
    name = config.get("tokenizer_class")
    if isinstance(name, str):
        return name.removesuffix("Fast")
    try:  # config.json belongs to the model: read only model_type, and never fail over it here
        model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return _MODEL_TYPE_CLASSES.get(model_type)


def _token_content(value: Any) -> str | None:
    """Special tokens are strings or AddedToken dicts ({"content": ...})."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _named_templates(value: Any, source: str | Path) -> dict[str, str]:
    """A chat_template entry (a string, or [{"name", "template"}, ...]) -> {name: source}."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"default": value}
    if isinstance(value, list) and all(isinstance(t, dict) and isinstance(t.get("name"), str)
                                       and isinstance(t.get("template"), str) for t in value):
        return {t["name"]: t["template"] for t in value}
    raise ValueError(f"{source}: chat_template must be a string or a list of "
                     f'{{"name": ..., "template": ...}} objects, got {type(value).__name__}')


def _read_template_files(path: Path) -> dict[str, str]:
    """chat_template.jinja (the default) and additional_chat_templates/NAME.jinja, when present."""
    files = {"default": path / "chat_template.jinja"}
    extra = path / "additional_chat_templates"
    if extra.is_dir():
        files.update({f.stem: f for f in sorted(extra.glob("*.jinja"))})
    templates = {}
    for name, file in files.items():
        if file.is_file():
            try:
                templates[name] = file.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{file} is not UTF-8 text: {exc}") from exc
    return templates


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`, or {} when the file is absent."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must contain a JSON object, got {type(data).__name__}")
    return data
