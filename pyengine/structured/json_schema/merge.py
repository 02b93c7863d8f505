"""Merging two schemas into one that accepts exactly what both accept (allOf, $ref with siblings,
anyOf with siblings), or a GrammarError naming the keyword that cannot be merged.

Property order, one rule at every depth: properties come in the order their keywords stand in the
schema, and a merged subschema's properties where that subschema stands. So in
`{"properties": {"a": ..}, "allOf": [{"properties": {"b": ..}}]}` `a` comes first, and in
`{"allOf": [..b..], "properties": {..a..}}` `b` does; a `$ref`'s target stands where the `$ref` is,
and an `anyOf`/`oneOf` branch where its keyword is, relative to the sibling `properties`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pyengine.structured.grammar import GrammarError, GrammarLimitError
from pyengine.structured.json_schema.keywords import (ANNOTATIONS, HANDLED, MAX_SCHEMA_DEPTH, TYPES,
                                                      UNSUPPORTED_KEYWORDS, as_list, json_equal, json_in,
                                                      schema_types)


def merge(a: Any, b: Any, compiler: Any, depth: int = 0) -> Any:
    """One schema that accepts exactly what both accept, or GrammarError when this cannot be written."""
    if depth > MAX_SCHEMA_DEPTH:
        raise GrammarLimitError("allOf/$ref merging nests too deep (a recursive $ref inside allOf?)")
    if a is True or a == {}:
        return b
    if b is True or b == {}:
        return a
    if a is False or b is False:
        return False
    if not isinstance(a, dict) or not isinstance(b, dict):
        raise GrammarError("allOf entries must be schemas (objects or booleans)")
    a, b = expand(a, compiler, depth), expand(b, compiler, depth)
    if isinstance(a, bool) or isinstance(b, bool):
        return merge(a, b, compiler, depth + 1)
    if "anyOf" in a or "oneOf" in a or "anyOf" in b or "oneOf" in b:
        # (A1 | A2) & B = (A1 & B) | (A2 & B); oneOf likewise (B false makes every branch false)
        first = "anyOf" in a or "oneOf" in a
        outer, other = (a, b) if first else (b, a)
        key = "anyOf" if "anyOf" in outer else "oneOf"
        branches = [with_siblings(outer, key, branch, compiler, depth + 1) for branch in as_list(outer[key], key)]
        return {key: [merge(branch, other, compiler, depth + 1) if first else merge(other, branch, compiler, depth + 1)
                      for branch in branches]}
    out = dict(a)
    for key, value in b.items():
        if key in ("properties", "additionalProperties", "patternProperties", "exclusiveMinimum", "exclusiveMaximum"):
            continue
        if key in ANNOTATIONS or (key not in HANDLED and key not in UNSUPPORTED_KEYWORDS):
            continue  # annotations and unknown keywords (x-...) constrain nothing
        if key not in out:
            out[key] = value
            continue
        mine = out[key]
        if json_equal(mine, value):
            continue
        if key == "type":
            ta, tb = set(schema_types({"type": mine})), set(schema_types({"type": value}))
            both = ta & tb
            if "number" in ta and "integer" in tb or "integer" in ta and "number" in tb:
                both.add("integer")
            out[key] = [t for t in TYPES if t in both]
            if not out[key]:
                return False
        elif key == "required":
            out[key] = list(dict.fromkeys(list(mine) + list(value)))
        elif key in ("minimum", "minLength", "minItems", "minProperties"):
            out[key] = max(mine, value)
        elif key in ("maximum", "maxLength", "maxItems", "maxProperties"):
            out[key] = min(mine, value)
        elif key == "multipleOf" and all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                         for v in (mine, value)):
            out[key] = math.lcm(mine, value)
        elif key == "not":  # not A and not B is not (A or B)
            out[key] = {"anyOf": [mine, value]}
        elif key == "enum":
            out[key] = [v for v in mine if json_in(v, value)]
        elif key == "const":
            return False
        elif key in ("items", "additionalItems") and isinstance(mine, (dict, bool)) and isinstance(value, (dict, bool)):
            out[key] = merge(mine, value, compiler, depth + 1)
        else:
            raise GrammarError(f"allOf: cannot merge two different {key!r} constraints")
    if any(k in x for x in (a, b) for k in ("properties", "additionalProperties", "patternProperties")):
        pa, pb = a.get("properties") or {}, b.get("properties") or {}
        xa, xb = a.get("additionalProperties", True), b.get("additionalProperties", True)
        qa, qb = a.get("patternProperties") or {}, b.get("patternProperties") or {}
        if (xa is not True and xa != {} and any(p not in qa for p in qb)) or \
                (xb is not True and xb != {} and any(p not in qb for p in qa)):
            raise GrammarError("allOf: cannot merge patternProperties with another part's additionalProperties")
        props = {}
        for name in list(pa) + [n for n in pb if n not in pa]:
            props[name] = merge(_declared(pa, qa, xa, name), _declared(pb, qb, xb, name), compiler, depth + 1)
        out["properties"] = props
        if qa or qb:
            patterns = dict(qa)
            for pattern, sub in qb.items():
                patterns[pattern] = merge(qa[pattern], sub, compiler, depth + 1) if pattern in qa else sub
            out["patternProperties"] = patterns
        if "additionalProperties" in a or "additionalProperties" in b:  # absent stays absent (strict objects)
            out["additionalProperties"] = merge(xa, xb, compiler, depth + 1)
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in b and key not in a:
            out[key] = b[key]
        elif key in a and key in b and a[key] != b[key]:
            if isinstance(a[key], bool) or isinstance(b[key], bool):
                raise GrammarError(f"allOf: cannot merge two different {key!r} constraints")
            out[key] = max(a[key], b[key]) if key == "exclusiveMinimum" else min(a[key], b[key])
    return out


def _declared(props: dict, patterns: dict, additional: Any, name: str) -> Any:
    """What one part says of the property `name` by itself (its patterns apply on top, once merged)."""
    if name in props:
        return props[name]
    if any(re.search(pattern, name) for pattern in patterns):
        return True
    return additional


def expand(schema: dict, compiler: Any, depth: int = 0) -> Any:
    """A schema with its $ref and allOf folded in (so it can be merged key by key); may be a bool."""
    if "$ref" not in schema and "allOf" not in schema:
        return schema
    if depth > MAX_SCHEMA_DEPTH:
        raise GrammarLimitError("allOf/$ref merging nests too deep (a recursive $ref inside allOf?)")
    merged: Any = True
    for part in in_order(schema, compiler):
        if isinstance(part, dict):
            part = expand(part, compiler, depth + 1)
        merged = merge(merged, part, compiler, depth + 1)
    return merged


def in_order(schema: dict, compiler: Any) -> list:
    """The schemas `schema` is the conjunction of, in the order they stand: its own keywords (where
    its `properties` stands), each `$ref` target and each `allOf` entry."""
    own = {k: v for k, v in schema.items() if k not in ("$ref", "allOf")}
    parts: list = [] if "properties" in own else [own]
    for key, value in schema.items():
        if key == "$ref":
            parts.append(compiler.resolve(value))
        elif key == "allOf":
            parts += as_list(value, "allOf")
        elif key == "properties":
            parts.append(own)
    return parts


def with_siblings(schema: dict, key: str, branch: Any, compiler: Any, depth: int = 0) -> Any:
    """`branch` of the `key` (anyOf/oneOf) of `schema` merged with the keywords beside it, each
    one's properties first as they stand."""
    rest = {k: v for k, v in schema.items() if k != key}
    keys = list(schema)
    if "properties" in rest and keys.index(key) < keys.index("properties"):
        return merge(branch, rest, compiler, depth)
    return merge(rest, branch, compiler, depth)
