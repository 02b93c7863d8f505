"""The request bodies of `POST /v1/chat/completions` and `POST /v1/completions`, as pydantic models.

These models decide one thing: does the JSON body fit `ChatCompletionRequest` of the spec
(`pyengine_server/openapi_spec.json`)? A body that does not is answered 422 with the spec's
`HTTPValidationError`. Types are read as vLLM's own pydantic models read them (pydantic's lax
mode): `"true"` and `"false"` are booleans, `"5"` and `5.0` are integers, `"0.5"` is a number;
`"maybe"`, `5.5` for an integer or `"abc"` for a number are still a 422. Every object allows
unknown keys (the spec's `additionalProperties: true`).

What a field *means* (ranges, combinations, what this text-only engine cannot do) is checked
later, in `serving_chat.py` and `params.py`, and answered 400. So these models are as lenient as
the spec and no more: a user message whose content parts are images is valid here (the spec
allows it) and rejected there with a 400 that says why.

The spec is vLLM's `ChatCompletionRequest` (vllm/entrypoints/openai/chat_completion/protocol.py);
`CompletionRequest` is vLLM's model of the same name (its completion/protocol.py), with the
same lenient reading.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

# -- JSON Schema's scalar types ---------------------------------------------------------------------


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
JsonObject = dict[str, Any]


class SpecModel(BaseModel):
    """Lax types (vLLM's pydantic defaults), unknown keys kept (the spec's `additionalProperties: true`)."""

    model_config = ConfigDict(extra="allow")


# -- messages --------------------------------------------------------------------------------------


class FunctionCall(SpecModel):
    name: str
    arguments: str


class ToolCallParam(SpecModel):
    """A tool call of an earlier assistant turn: `function` (or, in the spec, `custom`) type."""

    id: str
    type: Literal["function", "custom"]
    function: FunctionCall | None = None
    custom: JsonObject | None = None

    @model_validator(mode="after")
    def _has_its_body(self) -> "ToolCallParam":
        if self.type == "function" and self.function is None:
            raise ValueError("a tool call of type 'function' needs 'function'")
        if self.type == "custom" and self.custom is None:
            raise ValueError("a tool call of type 'custom' needs 'custom'")
        return self


class FunctionToolParam(SpecModel):
    type: Literal["function"]
    function: JsonObject


# A content part: a JSON object or (in custom-role messages) a bare string. The spec's union of
# part types accepts nearly any object (its "simple" image/audio/video parts have no required
# key), so parts are checked for meaning when the prompt is built, not here.
ContentPart = Union[str, JsonObject]


class RequestMessage(SpecModel):
    """One input message: the union of the spec's eight message schemas, folded into one.

    The spec's `CustomChatCompletionMessageParam` accepts any role string and needs nothing but
    `role`, so the union is that schema plus what the role-specific ones add: a null `content`
    for `assistant` and `function` messages, and custom tool calls on `assistant` messages. So a
    `tool` message without `tool_call_id`, a `function` message without `name` and a message
    without `content` are valid (the template sees an empty content). The harmony-style
    `Message` (with `author` instead of `role`) is accepted here and rejected as unsupported later.
    """

    role: str | None = None
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCallParam] | None = None
    reasoning: str | None = None
    tools: list[FunctionToolParam] | None = None
    author: JsonObject | None = None

    @model_validator(mode="after")
    def _role_rules(self) -> "RequestMessage":
        if self.role is None:
            if self.author is None:
                raise ValueError("a message needs a 'role'")
            return self
        fields = self.model_fields_set
        if self.content is None and "content" in fields and self.role not in ("assistant", "function"):
            raise ValueError(f"'content' may be null only in assistant and function messages, not {self.role!r}")
        if self.name is None and "name" in fields:
            raise ValueError("'name' must be a string")
        if self.role != "assistant" and any(c.type == "custom" for c in self.tool_calls or []):
            raise ValueError("custom tool calls are allowed only in assistant messages")
        return self


# -- tools -----------------------------------------------------------------------------------------


class FunctionDefinition(SpecModel):
    name: str
    description: str | None = None
    parameters: JsonObject | None = None


class ToolParam(SpecModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class NamedFunction(SpecModel):
    name: str


class NamedToolChoice(SpecModel):
    function: NamedFunction
    type: Literal["function"] = "function"


# -- structured outputs (accepted by the schema; see structured.py for what runs) -------------------


class JsonSchemaFormat(SpecModel):
    name: str
    description: str | None = None
    schema_: JsonObject | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(SpecModel):
    """`text`, `json_object`, `json_schema` (ResponseFormat) or `structural_tag` (both shapes)."""

    type: Literal["text", "json_object", "json_schema", "structural_tag"]
    json_schema: JsonSchemaFormat | None = None
    format: Any = None
    structures: list[JsonObject] | None = None
    triggers: list[str] | None = None

    @model_validator(mode="after")
    def _structural_tag_shape(self) -> "ResponseFormat":
        if self.type == "structural_tag":
            has_new = "format" in self.model_fields_set
            has_legacy = self.structures is not None and self.triggers is not None
            if not (has_new or has_legacy):
                raise ValueError("a structural_tag response_format needs 'format', or 'structures' and 'triggers'")
        return self


class StructuredOutputsParams(SpecModel):
    json_: str | JsonObject | None = Field(default=None, alias="json")
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    disable_fallback: bool = False
    disable_any_whitespace: bool = False
    disable_additional_properties: bool | None = None  # None: the engine's default (declared keys only)
    whitespace_pattern: str | None = None
    structural_tag: str | None = None
    # pyengine's own, documented as unsound: a oneOf whose branches are not proven disjoint is
    # compiled as anyOf (it may accept a document valid under two branches) instead of a 400
    unsound_one_of: bool = False
    backend: str | None = Field(default=None, alias="_backend")
    backend_was_auto: bool = Field(default=False, alias="_backend_was_auto")


# -- the request -----------------------------------------------------------------------------------


class StreamOptions(SpecModel):
    include_usage: bool | None = True
    continuous_usage_stats: bool | None = False


class RepetitionDetection(SpecModel):
    max_pattern_size: int = 0
    min_pattern_size: int = 0
    min_count: int = 0


VllmXargValue = Union[str, int, float, list[Union[str, int, float]]]


class ChatCompletionRequest(SpecModel):
    """`ChatCompletionRequest` of the spec, field for field, in the spec's order."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    messages: list[RequestMessage]
    model: str | None = None
    frequency_penalty: float | None = 0.0
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = 0
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = 1
    presence_penalty: float | None = 0.0
    response_format: ResponseFormat | None = None
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | None = None  # out of int64: 422, any size
    stop: str | list[str] | None = Field(default_factory=list)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[ToolParam] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = "none"
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    include_reasoning: bool = True
    parallel_tool_calls: bool | None = True
    user: str | None = None
    use_beam_search: bool = False
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    length_penalty: float = 1.0
    stop_token_ids: list[int] | None = Field(default_factory=list)
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    min_tokens: int = 0
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: Annotated[int, Field(ge=-1, le=2**63)] | None = None
    prompt_logprobs: int | None = None
    allowed_token_ids: list[int] | None = None
    bad_words: list[str] = Field(default_factory=list)
    echo: bool = False
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    add_special_tokens: bool = False
    documents: list[dict[str, str]] | None = None
    chat_template: str | None = None
    chat_template_kwargs: JsonObject | None = None
    mm_processor_kwargs: JsonObject | None = None
    structured_outputs: StructuredOutputsParams | None = None
    priority: int = 0
    request_id: str | None = None  # not nullable in the spec; see _request_id_not_null
    return_tokens_as_token_ids: bool | None = None
    return_token_ids: bool | None = None
    cache_salt: str | None = None
    kv_transfer_params: JsonObject | None = None
    vllm_xargs: dict[str, VllmXargValue] | None = None
    repetition_detection: RepetitionDetection | None = None

    @model_validator(mode="after")
    def _request_id_not_null(self) -> "ChatCompletionRequest":
        if "request_id" in self.model_fields_set and self.request_id is None:
            raise ValueError("request_id must be a string")
        return self

    def was_set(self, name: str) -> bool:
        """Whether the client sent this field (as opposed to taking the default)."""
        return name in self.model_fields_set


# -- text completions (vLLM's CompletionRequest) -----------------------------------------------------


TokenId = Annotated[int, Field(ge=0)]


class CompletionRequest(SpecModel):
    """`POST /v1/completions`: vLLM's fields, in vLLM's order (OpenAI's, then vLLM's extensions).

    `prompt` is a string, a list of strings, a list of token ids or a list of such lists; each
    prompt gets `n` choices. Fields that this engine cannot honour are declared so that
    serving_completion.py can answer them with a 400 that says why.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    model: str | None = None
    prompt: str | list[str] | list[TokenId] | list[list[TokenId]] | None = None
    echo: bool | None = False
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: int | None = None
    max_tokens: int | None = 16  # null means the default too, as in vLLM
    n: int = 1
    presence_penalty: float | None = None
    seed: Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)] | None = None
    stop: str | list[str] | None = Field(default_factory=list)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None
    use_beam_search: bool = False
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    watermarking: bool | None = None
    length_penalty: float = 1.0
    stop_token_ids: list[int] | None = Field(default_factory=list)
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    min_tokens: int = 0
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    truncate_prompt_tokens: Annotated[int, Field(ge=-1, le=INT64_MAX)] | None = None
    truncation_side: Literal["left", "right"] | None = None
    allowed_token_ids: list[int] | None = None
    prompt_logprobs: int | None = None
    logprob_token_ids: list[int] | None = None
    bad_words: list[str] = Field(default_factory=list)
    prompt_embeds: str | list[str] | None = None  # base64 tensors in JSON
    add_special_tokens: bool = True
    response_format: ResponseFormat | None = None
    structured_outputs: StructuredOutputsParams | None = None
    priority: Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)] = 0
    request_id: str | None = None
    session_id: str | None = None
    return_tokens_as_token_ids: bool | None = None
    return_token_ids: bool | None = None
    cache_salt: str | None = None
    kv_transfer_params: JsonObject | None = None
    ec_transfer_params: JsonObject | None = None
    vllm_xargs: dict[str, VllmXargValue] | None = None
    repetition_detection: RepetitionDetection | None = None
    thinking_token_budget: int | None = None
    stream_interval: Annotated[int, Field(ge=1)] | None = None

    def was_set(self, name: str) -> bool:
        """Whether the client sent this field (as opposed to taking the default)."""
        return name in self.model_fields_set


# -- the neighbouring endpoints (vLLM's shapes) ------------------------------------------------------


class TokenizeCompletionRequest(SpecModel):
    model: str | None = None
    prompt: str
    add_special_tokens: bool = True
    return_token_strs: bool | None = False


class TokenizeChatRequest(SpecModel):
    model: str | None = None
    messages: list[RequestMessage]
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    add_special_tokens: bool = False
    return_token_strs: bool | None = False
    chat_template: str | None = None
    chat_template_kwargs: JsonObject | None = None
    tools: list[ToolParam] | None = None
    documents: list[dict[str, str]] | None = None


class DetokenizeRequest(SpecModel):
    model: str | None = None
    tokens: list[int]
