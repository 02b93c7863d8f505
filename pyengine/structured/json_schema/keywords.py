"""JSON Schema's vocabulary as this compiler sees it: which keywords constrain which type, which are
annotations, which are refused, and the options every compile takes (`JsonOptions`)."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from pyengine.structured.grammar import GrammarBuilder, GrammarError

MAX_SCHEMA_DEPTH = 100  # nested subschemas (and $ref merges) before GrammarLimitError

# Keywords that validate but that a grammar here cannot express (error unless trivially true).
UNSUPPORTED_KEYWORDS = (
    "dependencies", "dependentSchemas", "dependentRequired", "if", "then", "else", "not", "uniqueItems",
    "contains", "minContains", "maxContains", "unevaluatedProperties", "unevaluatedItems",
    "$dynamicRef", "$recursiveRef",
)
# Keywords that carry no constraint (annotations and structure).
ANNOTATIONS = frozenset((
    "title", "description", "$schema", "$id", "id", "$comment", "default", "examples", "deprecated",
    "readOnly", "writeOnly", "$anchor", "$dynamicAnchor", "$recursiveAnchor", "contentMediaType",
    "contentEncoding", "contentSchema", "$defs", "definitions", "$vocabulary", "discriminator",
    "nullable", "example", "strict",
))
TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
# The keywords each type reads (a keyword of another type does not constrain this one).
TYPE_KEYWORDS = {
    "string": ("minLength", "maxLength", "pattern", "format"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "integer": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
    "array": ("items", "prefixItems", "additionalItems", "minItems", "maxItems"),
    "object": ("properties", "required", "additionalProperties", "patternProperties", "propertyNames",
               "minProperties", "maxProperties"),
}
HANDLED = frozenset(k for ks in TYPE_KEYWORDS.values() for k in ks) | {
    "type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref"}



@dataclasses.dataclass(frozen=True)
class JsonOptions:
    """How documents are laid out and how strict objects are (vLLM's per-request switches).

    `disable_additional_properties`: None (the default) or True reads an object schema that has
    `properties` and says nothing about `additionalProperties` as closed (only its declared keys,
    as vLLM's default backend generates); an explicit `additionalProperties` is kept. False gives
    plain JSON Schema semantics (undeclared keys allowed unless the schema forbids them).
    """

    whitespace: str = "flexible"  # "flexible" | "compact" | "pattern"
    whitespace_pattern: str | None = None  # the regex, when whitespace == "pattern"
    disable_additional_properties: bool | None = None
    # Read oneOf as anyOf where its branches are not proven disjoint. Unsound: a document valid under
    # two branches, which oneOf rejects, is then accepted. Off, such a oneOf is a GrammarError.
    unsound_one_of: bool = False

    def __post_init__(self) -> None:
        if self.disable_additional_properties is None:  # one key per grammar in caches: None means True
            object.__setattr__(self, "disable_additional_properties", True)

    @property
    def strict_objects(self) -> bool:
        """Whether an object schema that says nothing about additionalProperties is closed."""
        return self.disable_additional_properties is not False

    @classmethod
    def from_switches(cls, disable_any_whitespace: bool = False, whitespace_pattern: str | None = None,
                      disable_additional_properties: bool | None = None, unsound_one_of: bool = False) -> "JsonOptions":
        whitespace = ("pattern" if whitespace_pattern is not None else
                      "compact" if disable_any_whitespace else "flexible")
        return cls(whitespace, whitespace_pattern, disable_additional_properties, unsound_one_of)


def schema_types(schema: dict) -> list[str]:
    t = schema.get("type")
    if t is None:
        return list(TYPES)
    return [t] if isinstance(t, str) else list(t)


def json_equal(x: Any, y: Any) -> bool:
    """JSON Schema's equality: 1 == 1.0, but true is not 1; containers element by element."""
    if isinstance(x, bool) or isinstance(y, bool):
        return type(x) is type(y) and x == y
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return x == y
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(json_equal(a, b) for a, b in zip(x, y))
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(json_equal(x[k], y[k]) for k in x)
    return type(x) is type(y) and x == y


def json_in(value: Any, values: list) -> bool:
    """Whether some member of `values` is `json_equal` to `value`. Only a string equals a string,
    so a string is looked up with a plain `in` (enums of hundreds of strings meet each other in
    `allOf` merges and `oneOf` proofs)."""
    if type(value) is str and type(values) is list:
        return value in values
    return any(json_equal(v, value) for v in values)


def json_type_ok(value: Any, types: list[str]) -> bool:
    kind = ("null" if value is None else "boolean" if isinstance(value, bool) else
            "integer" if isinstance(value, int) else "number" if isinstance(value, float) else
            "string" if isinstance(value, str) else "array" if isinstance(value, list) else "object")
    if kind == "integer":
        return "integer" in types or "number" in types
    if kind == "number" and "integer" in types and float(value).is_integer():
        return True
    return kind in types


def satisfies(value: Any, schema: dict) -> bool:
    """Whether an enum/const value meets the sibling type keywords (checked with jsonschema if present)."""
    try:
        import jsonschema
    except ImportError:  # without the validator, keep the value only if no sibling keyword applies to it
        return False
    return jsonschema.Draft202012Validator({k: v for k, v in schema.items() if k not in ("enum", "const")}) \
        .is_valid(value)



def nonneg_int(schema: dict, key: str, default: Any) -> Any:
    value = schema.get(key, default)
    if value is default:
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise GrammarError(f"{key} must be a non-negative integer, got {value!r}")
    return value


def trivially_true(key: str, schema: dict) -> bool:
    """Unsupported keywords whose value constrains nothing are allowed."""
    value = schema[key]
    if key in ("dependentSchemas", "dependentRequired", "dependencies"):
        return value == {}
    if key == "uniqueItems":
        return value is False
    if key == "minContains":
        return value == 0
    if key in ("then", "else"):
        return "if" not in schema
    if key == "if":
        return "then" not in schema and "else" not in schema
    if key in ("unevaluatedProperties", "unevaluatedItems"):
        return value is True or value == {}
    return False


def json_text(text: str) -> str:
    """`json.dumps(text, ensure_ascii=False)`, without the new encoder that call builds each time."""
    return json.encoder.encode_basestring(text)


def as_list(value: Any, key: str) -> list:
    if not isinstance(value, list):
        raise GrammarError(f"{key} must be an array, got {json.dumps(value)[:80]}")
    return value


def rule_hint(ref: str) -> str:
    return "ref_" + re.sub(r"[^A-Za-z0-9_]", "_", ref.rsplit("/", 1)[-1] or "root")[:40]


def joined(items: list[Any], sep: Any, b: GrammarBuilder) -> list[Any]:
    out: list[Any] = []
    for i, item in enumerate(items):
        if i:
            out.append(sep)
        out.append(item)
    return out
