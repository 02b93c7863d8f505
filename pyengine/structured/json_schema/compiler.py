"""The compiler: a schema dispatched by its keywords and types to the grammar pieces of the other
modules (numbers, strings, objects), arrays and any value here, shared pieces copied from a library."""

from __future__ import annotations

import itertools
import json
import math
import threading
from typing import Any
from urllib.parse import unquote

from pyengine.structured.grammar import Grammar, GrammarBuilder, GrammarError, GrammarLimitError
from pyengine.structured.json_schema.keywords import (ANNOTATIONS, MAX_SCHEMA_DEPTH, TYPE_KEYWORDS, TYPES,
                                                      UNSUPPORTED_KEYWORDS, JsonOptions, as_list, joined, json_equal,
                                                      json_text, json_type_ok, nonneg_int, rule_hint, satisfies,
                                                      schema_types, trivially_true)
from pyengine.structured.json_schema.merge import expand, merge, with_siblings
from pyengine.structured.json_schema.numbers import Numbers, integer_bounds
from pyengine.structured.json_schema.objects import Objects, key_escapes
from pyengine.structured.json_schema.oneof import schema_path, shared_types
from pyengine.structured.json_schema.strings import Strings, accepts_non_strings, string_language

_WS_CHARS = ((0x20, 0x20), (0x09, 0x0A), (0x0D, 0x0D))  # space, tab, LF, CR


def json_schema_grammar(schema: Any, options: JsonOptions = JsonOptions()) -> Grammar:
    """The grammar of the JSON documents valid under `schema` (a dict, a bool, or JSON text).

    Raises:
        GrammarError: an invalid schema, or a keyword this compiler cannot express (listed).
        GrammarLimitError: nesting or bounds past the documented limits.
    """
    schema = _parsed(schema)
    try:
        return SchemaCompiler(schema, options).compile_root()
    except RecursionError:
        raise GrammarLimitError("the schema nests too deeply to compile") from None


def any_json_object_grammar(options: JsonOptions = JsonOptions()) -> Grammar:
    """`json_object`: any JSON object."""
    return json_schema_grammar({"type": "object"}, options)


def _parsed(schema: Any) -> Any:
    """A schema given as JSON text, parsed; a GrammarError unless it is an object or a boolean."""
    if isinstance(schema, (str, bytes)):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise GrammarError(f"the JSON schema is not valid JSON: {exc}") from None
    if not isinstance(schema, (dict, bool)):
        raise GrammarError(f"a JSON schema is an object or a boolean, got {type(schema).__name__}")
    return schema


def json_schema_expr(b: GrammarBuilder, schema: Any, options: JsonOptions = JsonOptions()) -> Any:
    """The same, as an element of a grammar being built with `b` (for tool calls, structural tags)."""
    schema = _parsed(schema)
    expr = SchemaCompiler(schema, options, b).schema(schema)
    if expr is None:
        raise GrammarError("the schema admits no value at all (false, an empty enum, or contradictory keywords)")
    return expr



class SchemaCompiler(Numbers, Strings, Objects):
    def __init__(self, root: dict | bool, options: JsonOptions, builder: GrammarBuilder | None = None,
                 use_library: bool = True):
        self.root = root
        self.options = options
        self.b = builder or GrammarBuilder()
        self.ref_rules: dict[str, str] = {}  # "#/$defs/x" -> rule name
        self.shared: dict[str, Any] = {}  # "value", "string", ... -> its element, built (or copied in) once
        # The shared pieces are copied in from the library of prebuilt ones for these options (see
        # `_library`), or, with no library, built here.
        self.library = _library(options) if use_library else None
        self.copied: dict[str, Any] = {}  # library rule name -> its copy in self.b
        self.tokens: dict[str, Any] = {}  # ",", ":" -> the token's element (see `token`)
        self.key_excepts: dict[tuple, Any] = {}  # undeclared keys by the names they avoid (see `key_except`)
        self.key_others: dict[tuple, list] = {}  # ... and the alternatives leaving the names (`key_other`)
        self.depth = 0

    def compile_root(self) -> Grammar:
        expr = self.schema(self.root)
        if expr is None:
            raise GrammarError("the schema admits no value at all (false, an empty enum, or contradictory keywords)")
        start = self.b.new_rule("root")
        self.b.define(start, expr)
        return self.b.build(start)

    # -- schemas -----------------------------------------------------------------------------------

    def schema(self, schema: Any) -> Any:
        """A subschema -> a builder expression, or None when no value is valid."""
        self.depth += 1
        if self.depth > MAX_SCHEMA_DEPTH:
            raise GrammarLimitError(f"the schema nests deeper than {MAX_SCHEMA_DEPTH} levels")
        try:
            return self._schema(schema)
        finally:
            self.depth -= 1

    def _schema(self, schema: Any) -> Any:
        if schema is True or schema == {}:
            return self.any_value()
        if schema is False:
            return None
        if not isinstance(schema, dict):
            raise GrammarError(f"a subschema must be an object or a boolean, got {json.dumps(schema)[:80]}")
        if isinstance(schema.get("if"), dict) and _negation(schema["if"]) is not None:
            return self.schema(_if_as_any_of(schema))
        if not _DEPENDENCIES.isdisjoint(schema) and any(k in schema and schema[k] != {} for k in DEPENDENCIES):
            return self.schema(_dependencies_as_any_of(schema))
        if "not" in schema and not _string_not(schema):
            positive = _negation(schema["not"])
            if positive is not None:
                rest = {k: v for k, v in schema.items() if k != "not"}
                return self.schema({"allOf": [rest, positive]})
        self.check_keywords(schema)
        if "$ref" in schema and all(k == "$ref" or k in ANNOTATIONS for k in schema):
            return self.b.ref(self.ref_rule(schema["$ref"]))
        if "$ref" in schema or "allOf" in schema:
            return self.schema(expand(schema, self))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                branches = as_list(schema[key], key)
                if any(k != key and k not in ANNOTATIONS for k in schema):  # siblings constrain every branch
                    branches = [with_siblings(schema, key, branch, self) for branch in branches]
                if key == "oneOf":
                    branches = self.exclusive(schema[key], branches)
                return self.alt([self.schema(branch) for branch in branches])
        return self.typed(schema)

    def exclusive(self, written: list, branches: list) -> list:
        """The branches of a `oneOf`, whose union is exact: proven disjoint, or disjoint once the
        types two branches both take whole are left out (a value of such a type matches both, so
        `oneOf` rejects it); otherwise a GrammarError (see oneof.py), or, opted in, as written."""
        if self.options.unsound_one_of:
            return branches
        left_out: set[str] = set()
        for i, j in itertools.combinations(range(len(branches)), 2):
            shared = shared_types(branches[i], branches[j], self)
            if shared is not None:
                left_out |= shared
            else:
                raise GrammarError(
                    f"oneOf at {schema_path(self.root, written)}: branches {i} and {j} may both match one "
                    "document, and a grammar cannot reject a document for matching two branches; make the "
                    "branches exclusive (a distinct const tag, a required key the other forbids, ...), use anyOf, "
                    "or opt in to reading oneOf as anyOf (unsound_one_of)")
        if not left_out:
            return branches
        if left_out & {"integer", "number"}:
            left_out |= {"integer", "number"}  # integers inside a number type cannot be left out alone
        kept = {"type": [t for t in TYPES if t not in left_out]}
        return [merge(kept, branch, self) for branch in branches]

    def typed(self, schema: dict) -> Any:
        types = schema_types(schema)
        values = None
        if "enum" in schema:
            values = as_list(schema["enum"], "enum")
        if "const" in schema:  # with an enum too (a merge), the const only if the enum has it
            values = [v for v in ([schema["const"]] if values is None else values) if json_equal(v, schema["const"])]
        if values is not None:
            values = [v for v in values if json_type_ok(v, types)]
            if "not" in schema or any(k in schema for ks in TYPE_KEYWORDS.values() for k in ks):
                values = [v for v in values if satisfies(v, schema)]  # a merged `not` too
            return self.alt([self.value_literal(v) for v in values])
        return self.alt([self.type_expr(t, schema) for t in types if not (t == "integer" and "number" in types)])

    def type_expr(self, type_: str, schema: dict) -> Any:
        b = self.b
        if type_ == "null":
            return b.literal("null")
        if type_ == "boolean":
            return b.alt(b.literal("true"), b.literal("false"))
        if type_ == "integer":
            if "multipleOf" in schema:
                return self.multiples(schema, integer=True)
            lo, hi = integer_bounds(schema, integer=True)
            return self._shared("integer") if lo is None and hi is None else self.integer(lo, hi)
        if type_ == "number":
            return self.number(schema)
        if type_ == "string":
            return self.string(schema)
        if type_ == "array":
            return self.array(schema)
        return self.object(schema)

    def check_keywords(self, schema: dict) -> None:
        if not _UNSUPPORTED.isdisjoint(schema):  # most schemas use none: one set test first (every subschema asks)
            bad = [k for k in UNSUPPORTED_KEYWORDS if k in schema and not trivially_true(k, schema)
                   and not (k == "not" and _string_not(schema))]
            if bad:
                raise GrammarError(f"unsupported JSON Schema keyword(s): {', '.join(bad)}")
        if "type" in schema:
            for t in [schema["type"]] if isinstance(schema["type"], str) else as_list(schema["type"], "type"):
                if t not in TYPES:
                    raise GrammarError(f"unknown type {t!r} (valid: {', '.join(TYPES)})")

    # -- references --------------------------------------------------------------------------------

    def ref_rule(self, ref: Any) -> str:
        if not isinstance(ref, str):
            raise GrammarError(f"$ref must be a string, got {ref!r}")
        if ref not in self.ref_rules:
            target = self.resolve(ref)
            name = self.b.new_rule(rule_hint(ref))
            self.ref_rules[ref] = name
            expr = self.schema(target)
            if expr is None:
                raise GrammarError(f"$ref {ref!r} admits no value")
            self.b.define(name, expr)
        return self.ref_rules[ref]

    def resolve(self, ref: Any) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise GrammarError(f"only local references ('#...') are supported, got $ref {ref!r}")
        node: Any = self.root
        pointer = unquote(ref[1:])
        if pointer and not pointer.startswith("/"):
            return self.anchor(pointer, ref)
        for part in pointer.split("/")[1:] if pointer else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise GrammarError(f"$ref {ref!r} points at nothing in the schema")
        return node

    def anchor(self, name: str, ref: str) -> Any:
        """The subschema that declares `"$anchor": name` (or a draft-7 `"$id": "#name"`)."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if node.get("$anchor") == name or node.get("$id") == "#" + name:
                    return node
                stack += [v for k, v in node.items() if k not in ("const", "enum", "default", "examples")]
            elif isinstance(node, list):
                stack += node
        raise GrammarError(f"$ref {ref!r}: no subschema declares the anchor {name!r}")

    # -- containers --------------------------------------------------------------------------------

    def ws(self) -> Any:
        """Whitespace between tokens, as the options say (one rule per grammar)."""
        return self._shared("ws")

    def _ws(self) -> Any:
        b = self.b
        name = b.new_rule("ws")
        if self.options.whitespace == "compact":
            b.define(name, b.seq())
        elif self.options.whitespace == "pattern":
            b.define(name, self.embed_regex(self.options.whitespace_pattern or ""))
        else:
            b.define(name, b.star(b.char_class(list(_WS_CHARS))))
        return b.ref(name)

    def token(self, text: str) -> Any:
        """A structural character with the whitespace that may surround it inside a document (one
        element per character and grammar: every member and item asks for one)."""
        element = self.tokens.get(text)
        if element is None:
            element = self.tokens[text] = self.b.seq(self.ws(), self.b.literal(text), self.ws())
        return element

    def array(self, schema: dict) -> Any:
        b = self.b
        prefix = schema.get("prefixItems")
        rest: Any = schema.get("items", True)
        if isinstance(rest, list):  # draft 4-7 tuple form
            prefix, rest = rest, schema.get("additionalItems", True)
        prefix = as_list(prefix, "prefixItems") if prefix is not None else []
        min_items = nonneg_int(schema, "minItems", 0)
        max_items = nonneg_int(schema, "maxItems", None)
        if max_items is not None and min_items > max_items:
            return None
        prefix_exprs = [self.schema(s) for s in prefix]
        rest_expr = self.schema(rest)
        # Positions past the first impossible prefix item cannot be reached.
        usable = next((i for i, e in enumerate(prefix_exprs) if e is None), len(prefix_exprs))
        limit = usable if usable < len(prefix_exprs) or rest_expr is None else None
        if max_items is not None:
            limit = max_items if limit is None else min(limit, max_items)
        if limit is not None and min_items > limit:
            return None
        comma = self.token(",")

        def items_from(i: int) -> Any:  # elements at positions i.. (each after a comma when i > 0)
            lead = [comma] if i else []
            if limit is not None and i >= limit:
                return b.seq()
            if i < len(prefix_exprs):
                body = b.seq(*lead, prefix_exprs[i], items_from(i + 1))
                return body if i < min_items else b.opt(body)
            need = max(min_items - i, 0)
            most = None if limit is None else limit - i
            if i:
                return b.repeat(b.seq(comma, rest_expr), need, most)
            first = b.seq(rest_expr, b.repeat(b.seq(comma, rest_expr), max(need - 1, 0),
                                                None if most is None else most - 1))
            return first if need else b.opt(first)

        return b.seq(b.literal("["), self.ws(), items_from(0), self.ws(), b.literal("]"))
    # -- any value ---------------------------------------------------------------------------------

    def any_value(self) -> Any:
        """Any JSON document (one recursive rule per grammar)."""
        return self._shared("value")

    def _any_value(self) -> Any:
        b = self.b
        name = b.new_rule("json_value")
        value = b.ref(name)
        comma = self.token(",")
        string = self.string({})
        member = b.seq(string, self.token(":"), value)
        obj = b.seq(b.literal("{"), self.ws(), b.opt(b.seq(member, b.star(b.seq(comma, member)))),
                    self.ws(), b.literal("}"))
        arr = b.seq(b.literal("["), self.ws(), b.opt(b.seq(value, b.star(b.seq(comma, value)))),
                    self.ws(), b.literal("]"))
        b.define(name, b.alt(b.literal("null"), b.literal("true"), b.literal("false"),
                             self.number({}), string, arr, obj))
        return value

    # -- shared pieces -----------------------------------------------------------------------------
    # Rules that do not depend on the schema (whitespace, a JSON string's characters, any value, ...)
    # are built once per options in a library (`_library`) and copied into each grammar that uses
    # them: copying a few finished rules costs far less than building them through the combinators.

    def _shared(self, key: str) -> Any:
        """The schema-independent piece `key` (see SHARED), made at most once per grammar."""
        element = self.shared.get(key)
        if element is None:
            if self.library is None:  # this is the library (or there is none): build it here
                element = self.SHARED[key](self)
            else:
                with _LIBRARY_LOCK:  # the library grows on demand, and compiles may run in threads
                    element = self.b.copy_in(self.library.b, self.library._shared(key), self.copied)
            self.shared[key] = element
        return element

    def _rule(self, hint: str, expr: Any) -> Any:
        name = self.b.new_rule(hint)
        self.b.define(name, expr)
        return self.b.ref(name)

    SHARED = {
        "ws": lambda self: self._ws(),
        "char": lambda self: self._string_char(),
        "string": lambda self: self._string_of_length(0, None),
        "number": lambda self: self._any_number(),
        "integer": lambda self: self.integer(None, None),
        "value": lambda self: self._any_value(),
        "key_char": lambda self: self._key_char_any(),
        "key_rest": lambda self: self.b.star(self.key_char_any()),
        # a key character that is non-ASCII or an escape
        "key_wide": lambda self: self._rule("key_wide", self.b.alt(self._non_ascii_char(), self._shared("key_escapes"))),
        "key_escapes": lambda self: self._rule("key_escape", self.b.literals(key_escapes([]))),
        "non_ascii": lambda self: self._rule("non_ascii", self.b.char_class([(0x80, 0x10FFFF)])),
    }

    def value_literal(self, value: Any) -> Any:
        """One JSON value as a grammar (containers with the whitespace policy)."""
        b = self.b
        if isinstance(value, dict):
            members = [b.seq(self.json_string_literal(k), self.token(":"), self.value_literal(v))
                       for k, v in value.items()]
            return b.seq(b.literal("{"), self.ws(), *joined(members, self.token(","), b), self.ws(), b.literal("}"))
        if isinstance(value, list):
            items = [self.value_literal(v) for v in value]
            return b.seq(b.literal("["), self.ws(), *joined(items, self.token(","), b), self.ws(), b.literal("]"))
        if isinstance(value, float) and not math.isfinite(value):
            raise GrammarError(f"{value} is not a JSON value")
        if isinstance(value, str):
            return self.json_string_literal(value)
        return b.literal(json.dumps(value))  # a number, true, false or null

    def json_string_literal(self, text: str) -> Any:
        """A fixed string as JSON writes it: raw UTF-8, or with non-ASCII as \\u escapes (json.dumps)."""
        raw, ascii_ = json_text(text), json.encoder.encode_basestring_ascii(text)  # json.dumps(text), without its checks
        return self.b.literal(raw) if raw == ascii_ else self.b.alt(self.b.literal(raw), self.b.literal(ascii_))

    def alt(self, parts: list[Any]) -> Any:
        """Alternation of the parts that admit something; None when none does."""
        parts = [p for p in parts if p is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else self.b.alt(*parts)


DEPENDENCIES = ("dependentRequired", "dependentSchemas", "dependencies")
_DEPENDENCIES, _UNSUPPORTED = frozenset(DEPENDENCIES), frozenset(UNSUPPORTED_KEYWORDS)  # for quick tests
MAX_DEPENDENCIES = 4  # each one doubles the union the object is compiled as


def _dependencies_as_any_of(schema: dict) -> dict:
    """Each dependency "if key k is present, then D" as the union (k absent) or (k present and D)."""
    rest = {k: v for k, v in schema.items() if k not in DEPENDENCIES}
    parts = [rest]
    for keyword in DEPENDENCIES:
        value = schema.get(keyword, {})
        if not isinstance(value, dict):
            raise GrammarError(f"{keyword} must be an object")
        if len(value) > MAX_DEPENDENCIES:
            raise GrammarLimitError(f"more than {MAX_DEPENDENCIES} {keyword} entries in one object")
        for key, then in value.items():
            present = {"required": [key, *then]} if isinstance(then, list) else {"allOf": [{"required": [key]}, then]}
            parts.append({"anyOf": [{"properties": {key: False}}, present]})
    return {"allOf": parts}


def _string_not(schema: dict) -> bool:
    """A string schema whose `not` is string keywords only: strings.py writes it as a complement."""
    return schema_types(schema) == ["string"] and string_language(schema["not"]) is not None


def _negation(negated: Any) -> Any:
    """A schema without `not` accepting exactly what `negated` rejects, for the forms this knows
    (required keys, a type test, string keywords, a scalar const, properties whose values' schemas
    are such forms, as an `if` testing a discriminator's `const` is); None otherwise."""
    if not isinstance(negated, dict):
        return None
    keys = {k for k in negated if k not in ANNOTATIONS}
    if keys == {"anyOf"} and isinstance(negated["anyOf"], list) and negated["anyOf"]:
        parts = [_negation(part) for part in negated["anyOf"]]  # not (A or B) is (not A) and (not B)
        if all(part is not None for part in parts):
            return {"allOf": parts}
    if keys == {"properties", "required"}:  # not (P and R) is (not P) or (not R)
        parts = [_negation({"properties": negated["properties"]}), _negation({"required": negated["required"]})]
        return {"anyOf": parts} if all(part is not None for part in parts) else None
    if keys == {"properties"} and isinstance(negated["properties"], dict) and negated["properties"]:
        # not P: an object where some listed key is present with a value its schema rejects (any
        # other value satisfies `properties`, vacuously)
        values = {k: _negation(v) for k, v in negated["properties"].items()}
        if any(v is None for v in values.values()):
            return None
        parts = [{"type": "object", "required": [k], "properties": {k: v}} for k, v in values.items()]
        return parts[0] if len(parts) == 1 else {"anyOf": parts}
    if keys == {"required"} and isinstance(negated["required"], list) and negated["required"]:
        # an object missing some required key (any other value satisfies `required`, vacuously)
        absent = [{"type": "object", "properties": {k: False}} for k in negated["required"]]
        return absent[0] if len(absent) == 1 else {"anyOf": absent}
    if keys == {"const"} and (negated["const"] is None or isinstance(negated["const"], (bool, int, float))):
        value = negated["const"]  # a scalar: every other type, or the other values of its own
        if value is None:
            return {"type": [t for t in TYPES if t != "null"]}
        if isinstance(value, bool):
            return {"anyOf": [{"type": [t for t in TYPES if t != "boolean"]}, {"const": not value}]}
        return {"anyOf": [{"type": [t for t in TYPES if t not in ("integer", "number")]},
                          {"type": "number", "exclusiveMaximum": value}, {"type": "number", "exclusiveMinimum": value}]}
    if keys == {"type"}:
        tested = schema_types(negated)
        if "integer" in tested and "number" not in tested:
            return None  # the non-integer numbers have no type of their own
        return {"type": [t for t in TYPES if t not in tested and not (t == "integer" and "number" in tested)]}
    if string_language(negated) is None:
        return None
    non_strings = accepts_non_strings(negated)
    if non_strings is None:
        return None
    if non_strings:  # negated takes every non-string: its complement is strings only
        return {"type": "string", "not": negated}
    return {"anyOf": [{"type": [t for t in TYPES if t != "string"]}, {"type": "string", "not": negated}]}


def _if_as_any_of(schema: dict) -> dict:
    """if/then/else, where `if` has a positive negation (`_negation`: a type test, a discriminator's
    const, ...), as a union: (if and then) or (not if, and else). Each side accepts only valid
    documents, and together they accept every one."""
    rest = {k: v for k, v in schema.items() if k not in ("if", "then", "else")}
    condition, otherwise = schema["if"], _negation(schema["if"])
    branches = [{"allOf": [condition, schema.get("then", True)]},
                {"allOf": [otherwise, schema.get("else", True)]} if otherwise != {"type": []} else False]
    return {"allOf": [rest, {"anyOf": branches}]}


_LIBRARY_LOCK = threading.Lock()
_LIBRARIES: dict[str, SchemaCompiler] = {}


def _library(options: JsonOptions) -> SchemaCompiler | None:
    """The compiler that holds the prebuilt shared pieces for these options' whitespace.

    Only the two fixed whitespace modes have one (a whitespace pattern is any regex from a request;
    its grammars build their shared pieces themselves). Pieces are added on first use.
    """
    if options.whitespace not in ("flexible", "compact"):
        return None
    library = _LIBRARIES.get(options.whitespace)
    if library is None:
        library = _LIBRARIES.setdefault(options.whitespace,
                                           SchemaCompiler(True, JsonOptions(options.whitespace), use_library=False))
    return library


