"""`oneOf` soundly: its branches may be compiled as a union only when no document is valid under two.

An instance valid under two branches fails `oneOf`, but a union of the branches' grammars accepts
it; so the union is exact only when the branches are disjoint. `disjoint(a, b)` proves that for
the cases schemas use: different types; a `const`/`enum` whose every value the other branch
rejects; a property one branch requires whose value schemas cannot both hold (a different
`const` tag, or a key the other forbids through `false` or `additionalProperties: false`);
numeric ranges, lengths, item counts and property counts that do not meet; and strings whose
regular languages (`pattern`, `format`, lengths) do not intersect. It answers False whenever it
cannot prove disjointness: a False is "not proven", never "they overlap".

The proofs read the schema as written (plain JSON Schema): the strict-object option narrows each
branch's grammar, which keeps a disjoint union sound, but it cannot make overlapping branches disjoint.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any, Callable

from pyengine.structured.grammar import GrammarError
from pyengine.structured.json_schema.keywords import TYPE_KEYWORDS, TYPES, json_equal, json_in, schema_types
from pyengine.structured.json_schema.merge import expand, with_siblings
from pyengine.structured.json_schema.numbers import exact_bounds

MAX_PROOF_DEPTH = 12  # nested subschemas a proof looks into before giving up (not proven)


def disjoint(a: Any, b: Any, compiler: Any, depth: int = 0) -> bool:
    """True when no JSON value is valid under both schemas (proven); False when not proven."""
    if depth > MAX_PROOF_DEPTH:
        return False
    try:
        a, b = _expanded(a, compiler), _expanded(b, compiler)
    except GrammarError:
        return False
    if a is False or b is False:
        return True
    if a is True or b is True:
        return False
    for x, y in ((a, b), (b, a)):
        for key in ("anyOf", "oneOf"):
            if isinstance(x.get(key), list):
                branches = _branches(x, key, compiler)
                return branches is not None and all(disjoint(br, y, compiler, depth + 1) for br in branches)
    for x, y in ((a, b), (b, a)):
        values = _values(x)
        if values is not None:  # x's values, each rejected by y or by x's other keywords
            rest = {k: v for k, v in x.items() if k not in ("const", "enum")}
            return all(excludes(y, v, compiler) or excludes(rest, v, compiler) for v in values)
    common = _common_types(a, b)
    return all(_disjoint_as(t, a, b, compiler, depth) for t in common)


def shared_types(a: Any, b: Any, compiler: Any) -> set[str] | None:
    """The JSON types on which two branches overlap only because both accept every value of the
    type (a value of such a type fails `oneOf`, so the union can leave the type out), when on
    every other type they are proven disjoint; None when they may overlap otherwise."""
    if disjoint(a, b, compiler):
        return set()
    try:
        a, b = _expanded(a, compiler), _expanded(b, compiler)
    except GrammarError:
        return None
    if not isinstance(a, dict) or not isinstance(b, dict) or any(
            k in x for x in (a, b) for k in ("anyOf", "oneOf", "const", "enum", "not")):
        return None
    shared = set()
    for kind in _common_types(a, b):
        if _disjoint_as(kind, a, b, compiler, 0):
            continue
        if not (_takes_every(a, kind) and _takes_every(b, kind)):
            return None
        shared.add(kind)
    return shared


def _takes_every(schema: dict, kind: str) -> bool:
    """Whether every value of JSON type `kind` is valid under `schema` (no keyword of that type)."""
    words = TYPE_KEYWORDS["number" if kind == "integer" else kind] if kind in TYPE_KEYWORDS else ()
    return kind in schema_types(schema) and not any(k in schema for k in words)


def excludes(schema: Any, value: Any, compiler: Any, depth: int = 0) -> bool:
    """True when `value` is certainly invalid under `schema`; False when valid or not decided."""
    if depth > MAX_PROOF_DEPTH:
        return False
    try:
        schema = _expanded(schema, compiler)
    except GrammarError:
        return False
    if schema is False:
        return True
    if schema is True:
        return False
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            branches = _branches(schema, key, compiler)
            if branches is not None and all(excludes(br, value, compiler, depth + 1) for br in branches):
                return True
    kind = json_type(value)
    types = schema_types(schema)
    if kind not in types and not (kind == "integer" and "number" in types) \
            and not (kind == "number" and "integer" in types and float(value).is_integer()):
        return True
    if "const" in schema and not json_equal(schema["const"], value):
        return True
    if isinstance(schema.get("enum"), list) and not json_in(value, schema["enum"]):
        return True
    if kind in ("integer", "number"):
        return _number_excluded(schema, value)
    if kind == "string":
        return _string_excluded(schema, value)
    if kind == "object":
        required = schema.get("required", [])
        if isinstance(required, list) and any(k not in value for k in required):
            return True
        return any(excludes(property_schema(schema, k), v, compiler, depth + 1) for k, v in value.items())
    if kind == "array":
        low, high = _count_range(schema, "minItems", "maxItems")
        if len(value) < low or (high is not None and len(value) > high):
            return True
        return any(excludes(item_schema(schema, i), v, compiler, depth + 1) for i, v in enumerate(value))
    return False


def schema_path(root: Any, target: Any) -> str:
    """The JSON pointer of `target` (found by identity) inside `root`, or '#' when not found."""
    stack = [(root, "#")]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if isinstance(node, dict):
            stack += [(v, f"{path}/{str(k).replace('~', '~0').replace('/', '~1')}") for k, v in node.items()]
        elif isinstance(node, list):
            stack += [(v, f"{path}/{i}") for i, v in enumerate(node)]
    return "#"


# -- what a schema says about one type ------------------------------------------------------------------


def _disjoint_as(kind: str, a: dict, b: dict, compiler: Any, depth: int) -> bool:
    """No value of JSON type `kind` is valid under both."""
    if kind in ("integer", "number"):
        return _ranges_apart(a, b, integer=kind == "integer")
    if kind == "string":
        if _counts_apart(a, b, "minLength", "maxLength"):
            return True
        regex_disjoint: Callable | None = getattr(compiler, "strings_disjoint", None)
        return regex_disjoint is not None and regex_disjoint(a, b)
    if kind == "array":
        if _counts_apart(a, b, "minItems", "maxItems"):
            return True
        need = max(_count_range(a, "minItems", "maxItems")[0], _count_range(b, "minItems", "maxItems")[0])
        return any(disjoint(item_schema(a, i), item_schema(b, i), compiler, depth + 1) for i in range(min(need, 8)))
    if kind == "object":
        if _counts_apart(a, b, "minProperties", "maxProperties"):
            return True
        for x, y in ((a, b), (b, a)):
            required = x.get("required", [])
            for key in required if isinstance(required, list) else []:
                if disjoint(property_schema(x, key), property_schema(y, key), compiler, depth + 1):
                    return True
        return False
    return False  # null and boolean differ only by value, which const/enum decided


def property_schema(schema: dict, key: str) -> Any:
    """The schema a property named `key` must satisfy under `schema` (True when unconstrained)."""
    props = schema.get("properties")
    if isinstance(props, dict) and key in props:
        return props[key]
    patterns = schema.get("patternProperties")
    if isinstance(patterns, dict) and patterns:
        matching = []
        for pattern, sub in patterns.items():
            try:
                found = re.search(pattern, key) is not None
            except (re.error, TypeError):
                return True  # not decided: the key may or may not be constrained
            if found:
                matching.append(sub)
        if matching:
            return {"allOf": matching} if len(matching) > 1 else matching[0]
    return schema.get("additionalProperties", True)


def item_schema(schema: dict, index: int) -> Any:
    """The schema the array item at `index` must satisfy under `schema`."""
    prefix, rest = schema.get("prefixItems"), schema.get("items", True)
    if isinstance(rest, list):
        prefix, rest = rest, schema.get("additionalItems", True)
    if isinstance(prefix, list) and index < len(prefix):
        return prefix[index]
    return rest


def json_type(value: Any) -> str:
    return ("null" if value is None else "boolean" if isinstance(value, bool) else
            "integer" if isinstance(value, int) or (isinstance(value, float) and value.is_integer()) else
            "number" if isinstance(value, float) else "string" if isinstance(value, str) else
            "array" if isinstance(value, list) else "object")


def _expanded(schema: Any, compiler: Any) -> Any:
    if schema == {}:
        return True
    if isinstance(schema, dict) and ("$ref" in schema or "allOf" in schema):
        schema = expand(schema, compiler, 0)
    if isinstance(schema, dict) and schema.get("not") is not None:
        schema = {k: v for k, v in schema.items() if k != "not"}  # dropping a constraint only widens
    return True if schema == {} else schema


def _branches(schema: dict, key: str, compiler: Any) -> list | None:
    try:
        return [with_siblings(schema, key, branch, compiler) for branch in schema[key]]
    except GrammarError:
        return None


def _values(schema: dict) -> list | None:
    if "const" in schema:
        return [schema["const"]]
    if isinstance(schema.get("enum"), list):
        return schema["enum"]
    return None


def _common_types(a: dict, b: dict) -> list[str]:
    ta, tb = set(schema_types(a)), set(schema_types(b))
    both = ta & tb
    if ("integer" in ta and "number" in tb) or ("number" in ta and "integer" in tb):
        both.add("integer")
    if "number" in both:
        both.discard("integer")  # the number check covers integers too
    return [t for t in TYPES if t in both]


def _ranges_apart(a: dict, b: dict, integer: bool) -> bool:
    try:
        ra, rb = _range(a, integer), _range(b, integer)
    except (GrammarError, TypeError):
        return False
    for (_, _, hi, hi_open), (lo, lo_open, _, _) in ((ra, rb), (rb, ra)):
        if hi is not None and lo is not None and (hi < lo or (hi == lo and (hi_open or lo_open))):
            return True
    return False


def _range(schema: dict, integer: bool) -> tuple:
    lo, lo_open, hi, hi_open = exact_bounds(schema)
    if integer or schema.get("type") == "integer":  # the integers in the range, closed
        if lo is not None:
            lo, lo_open = (math.floor(lo) + 1 if lo_open else math.ceil(lo)), False
        if hi is not None:
            hi, hi_open = (math.ceil(hi) - 1 if hi_open else math.floor(hi)), False
    return lo, lo_open, hi, hi_open


def _count_range(schema: dict, low_key: str, high_key: str) -> tuple[int, int | None]:
    low, high = schema.get(low_key, 0), schema.get(high_key)
    low = low if isinstance(low, (int, float)) and not isinstance(low, bool) else 0
    high = high if isinstance(high, (int, float)) and not isinstance(high, bool) else None
    return math.ceil(low), (None if high is None else math.floor(high))


def _counts_apart(a: dict, b: dict, low_key: str, high_key: str) -> bool:
    (la, ha), (lb, hb) = _count_range(a, low_key, high_key), _count_range(b, low_key, high_key)
    return (ha is not None and ha < lb) or (hb is not None and hb < la)


def _number_excluded(schema: dict, value: Any) -> bool:
    try:
        lo, lo_open, hi, hi_open = exact_bounds(schema)
    except GrammarError:
        return False
    if lo is not None and (value < lo or (lo_open and value == lo)):
        return True
    if hi is not None and (value > hi or (hi_open and value == hi)):
        return True
    step = schema.get("multipleOf")
    if isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0:
        return Fraction(str(value)) % Fraction(str(step)) != 0
    return False


def _string_excluded(schema: dict, value: str) -> bool:
    low, high = _count_range(schema, "minLength", "maxLength")
    if len(value) < low or (high is not None and len(value) > high):
        return True
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            return re.search(pattern, value) is None
        except re.error:
            return False
    return False
