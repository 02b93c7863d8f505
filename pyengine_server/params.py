"""Request checks that pass the schema but not vLLM's rules, and the request -> SamplingParams map.

Chat and text completion requests share their sampling fields and these rules; they differ in
how logprobs are asked for (chat: `logprobs: true` plus `top_logprobs`; completions: `logprobs`
is the number of top logprobs) and in what `echo` turns on.

`check_request` is vLLM's "before" validators plus the fields this server cannot honour
(all 400: no field of the spec is silently inert). `sampling_params` builds `SamplingParams`
with vLLM's names; its own range checks raise ValueError, which the handler answers 400.
Omitted sampling fields take the server's generation defaults (`generation_defaults`): the
model's `generation_config.json` with `--generation-config auto` (the default, as in vLLM),
another folder's with `--generation-config PATH`, none with `--generation-config vllm`, and
`--override-generation-config` on top of any of them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pyengine import SamplingParams
from pyengine_server.errors import bad_request
from pyengine_server.protocol import ChatCompletionRequest, CompletionRequest

AnyRequest = ChatCompletionRequest | CompletionRequest

# Fields filled from generation_config.json when the request leaves them out (as vLLM does).
GENERATION_CONFIG_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")


def generation_defaults(model_path: str, source: str = "auto",
                        overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sampling defaults a request's omitted fields take (and `max_new_tokens`).

    `source` is `--generation-config`: "auto" reads `model_path`'s generation_config.json,
    "vllm" reads nothing (the neutral values), any other value is a folder holding one.
    `overrides` (`--override-generation-config`) replace single fields of the result.

    Raises:
        ValueError: an override names a field we do not read, or a value is not a number.
    """
    if source == "vllm":
        defaults: dict[str, Any] = {}
    else:
        folder = Path(model_path if source == "auto" else source)
        if source != "auto" and not (folder / "generation_config.json").is_file():
            raise ValueError(f"--generation-config {source}: no generation_config.json in that folder")
        defaults = read_generation_config(folder)
    known = (*GENERATION_CONFIG_FIELDS, "max_new_tokens")
    for name, value in (overrides or {}).items():
        if name not in known:
            raise ValueError(f"--override-generation-config: {name!r} is not a field we read; "
                             f"known: {', '.join(known)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"--override-generation-config: {name} must be a number, got {value!r}")
        defaults[name] = value
    return defaults


def read_generation_config(model_path: str | Path) -> dict[str, Any]:
    """The checkpoint's sampling defaults (and `max_new_tokens`), or {} when it has none."""
    path = Path(model_path) / "generation_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(config, dict):
        return {}
    defaults = {k: config[k] for k in GENERATION_CONFIG_FIELDS if k in config}
    if "max_new_tokens" in config:
        defaults["max_new_tokens"] = config["max_new_tokens"]
    return defaults


def check_request(request: AnyRequest, max_n: int) -> None:
    """400 for combinations vLLM rejects and for fields this server cannot honour."""
    if request.stream_options is not None and not request.stream:
        raise bad_request("Stream options can only be defined when `stream=True`.", "stream_options")
    if isinstance(request, ChatCompletionRequest):
        top = request.top_logprobs
        if top is not None and top < -1:
            raise bad_request(f"`top_logprobs` must be a non-negative value or -1, got {top}.", "top_logprobs")
        if top is not None and top != 0 and not request.logprobs:
            raise bad_request("when using `top_logprobs`, `logprobs` must be set to true.", "top_logprobs")
    elif request.logprobs is not None and request.logprobs < -1:
        raise bad_request(f"`logprobs` must be a non-negative value or -1, got {request.logprobs}.", "logprobs")
    prompt_logprobs = request.prompt_logprobs
    if request.stream and prompt_logprobs is not None and prompt_logprobs != 0:
        raise bad_request("`prompt_logprobs` are not available when `stream=True`.", "prompt_logprobs")
    if prompt_logprobs is not None and prompt_logprobs < -1:
        raise bad_request(f"`prompt_logprobs` must be a non-negative value or -1, got {prompt_logprobs}.",
                          "prompt_logprobs")
    if request.cache_salt is not None and not request.cache_salt:
        raise bad_request("Parameter 'cache_salt' must be a non-empty string if provided.", "cache_salt")
    if request.n is not None and request.n > max_n:
        raise bad_request(f"n must be at most {max_n} on this server, got {request.n}.", "n")
    for name in ("temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty",
                 "repetition_penalty", "length_penalty"):
        value = getattr(request, name)
        if value is not None and not math.isfinite(value):
            raise bad_request(f"{name} must be a finite number, got {value}.", name)
    if request.length_penalty != 1.0 and not request.use_beam_search:
        raise bad_request("length_penalty applies only to beam search; set use_beam_search: true or "
                          "leave length_penalty at 1.0", "length_penalty")
    if request.logit_bias:
        bad_keys = [key for key in request.logit_bias if not _is_token_id_text(key)]
        if bad_keys:
            raise bad_request(f"logit_bias keys must be token ids written as integers; these are not: {bad_keys}",
                              "logit_bias")
    _check_unsupported(request)


def _is_token_id_text(key: str) -> bool:
    try:
        int(key)
    except ValueError:
        return False
    return True


def _check_unsupported(request: AnyRequest) -> None:
    """Spec fields whose feature this server does not have: a 400 that says why."""
    if request.kv_transfer_params:
        raise bad_request("kv_transfer_params needs a KV-transfer connector (disaggregated serving), "
                          "which this server does not have", "kv_transfer_params")
    if getattr(request, "mm_processor_kwargs", None):  # chat only
        raise bad_request("mm_processor_kwargs: this server runs a text-only model and has no "
                          "multimodal processor", "mm_processor_kwargs")
    if request.vllm_xargs:
        raise bad_request("vllm_xargs are passed to server extensions; this server has none installed",
                          "vllm_xargs")


def sampling_params(request: AnyRequest, max_tokens: int, defaults: dict[str, Any],
                    logprobs_for_echo: bool = True, structured_outputs: Any = None) -> SamplingParams:
    """The request's sampling fields as SamplingParams (raises ValueError -> 400).

    `echo` turns on prompt logprobs (vLLM's quirk) unless `logprobs_for_echo` is false: as many
    as `top_logprobs` for chat (0 by default, so always), as many as `logprobs` for completions
    (none without it).
    """

    def pick(name: str, neutral: Any) -> Any:
        value = getattr(request, name)
        if value is not None:
            return value
        return defaults.get(name, neutral)

    if isinstance(request, ChatCompletionRequest):
        logprobs = (request.top_logprobs or 0) if request.logprobs else None
        echo_logprobs = request.top_logprobs
    else:
        logprobs = echo_logprobs = request.logprobs
    prompt_logprobs = request.prompt_logprobs
    if prompt_logprobs is None and request.echo and logprobs_for_echo:
        prompt_logprobs = echo_logprobs  # vLLM's quirk: echo turns on prompt logprobs
    repetition = request.repetition_detection
    return SamplingParams(
        n=request.n if request.n is not None else 1,
        temperature=pick("temperature", 1.0),
        top_p=pick("top_p", 1.0),
        top_k=pick("top_k", 0),
        min_p=pick("min_p", 0.0),
        presence_penalty=request.presence_penalty or 0.0,
        frequency_penalty=request.frequency_penalty or 0.0,
        repetition_penalty=pick("repetition_penalty", 1.0),
        logit_bias=request.logit_bias,  # SamplingParams names every key that is not a token id
        allowed_token_ids=request.allowed_token_ids,
        bad_words=request.bad_words or None,
        min_tokens=request.min_tokens,
        max_tokens=max_tokens,
        stop=request.stop,
        stop_token_ids=request.stop_token_ids,
        include_stop_str_in_output=request.include_stop_str_in_output,
        ignore_eos=request.ignore_eos,
        seed=request.seed,
        logprobs=logprobs,
        prompt_logprobs=prompt_logprobs,
        skip_special_tokens=request.skip_special_tokens,
        spaces_between_special_tokens=request.spaces_between_special_tokens,
        repetition_detection=repetition.model_dump(include={"max_pattern_size", "min_pattern_size", "min_count"})
        if repetition is not None else None,
        use_beam_search=request.use_beam_search,
        length_penalty=request.length_penalty,
        structured_outputs=structured_outputs,  # pyengine_server/structured.py builds and checks it
    )
