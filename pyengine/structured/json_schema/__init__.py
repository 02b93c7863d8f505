"""JSON Schema -> Grammar: what each keyword becomes, through `GrammarBuilder`.

    grammar = json_schema_grammar({"type": "object", "properties": {"a": {"type": "integer"}}})
    matches(grammar, b'{"a": 12}')  # True (pyengine.structured.matches)

The guiding rule: the grammar never accepts a document the schema rejects. Where a keyword can be
expressed exactly it is; where only a stricter language can be written (a bounded float, an
escaped object key) the grammar is stricter and the docs say so; where neither is possible the
compile fails with `GrammarError` naming the keyword. Nothing is silently dropped.

What each part becomes (docs/06-structured-outputs.md walks through one example), and where:
keywords.py (the vocabulary, `JsonOptions`), compiler.py (dispatch by keyword and type, arrays,
references), numbers.py, strings.py, objects.py, merge.py (allOf and property order), oneof.py.

- types: `null`, `boolean`, `integer` (`-?(0|[1-9][0-9]*)`, no `1.0`), `number` (JSON's number),
  `string` (JSON's string, escapes included), `array`, `object`; a list of types is an alternation;
  no `type` means every type, each still subject to its own keywords (JSON Schema's rule).
- `enum` / `const`: the values, serialised as JSON (objects and arrays with the whitespace policy).
- `anyOf`; `oneOf` as the same union, but only where its branches are proven disjoint (oneof.py:
  different types, const tags, a required key the other branch forbids, ranges that do not meet,
  ...), else a `GrammarError` naming the schema path; `JsonOptions.unsound_one_of` reads it as
  `anyOf` instead (a document valid under two branches is then accepted, which oneOf rejects).
- `allOf`: merged into one schema (types intersected, properties merged per name, `required`
  united, bounds tightened); keywords that cannot be merged are a `GrammarError`.
- `$ref` (`#`, `#/$defs/..`, `#/definitions/..`, any local JSON pointer): one rule per target, so
  recursive schemas are recursive rules. Remote references are an error.
- objects: declared `properties` in schema order, required ones mandatory, optional ones optional,
  then additional properties, whose keys exclude the declared names. With strict objects (the
  default, `JsonOptions.disable_additional_properties` None or True) an object schema that has
  `properties` and says nothing about `additionalProperties` takes no other key; False gives plain
  JSON Schema (undeclared keys allowed unless `additionalProperties` says otherwise). Additional
  keys use canonical escapes only (no `\\u` escapes for printable characters), so that "not a
  declared name" can be decided on the text.
- arrays: `prefixItems` (or draft-4 `items: [...]` + `additionalItems`), `items`, `minItems`,
  `maxItems` exactly. `patternProperties` (a key takes the schemas of every pattern it matches,
  declared keys too), `propertyNames` as a string schema, `minProperties`/`maxProperties`.
- strings: `minLength` / `maxLength` in characters (an escape is one character), `pattern` (the
  regex front end's dialect, unanchored as JSON Schema says; `^`/`$` anchor anywhere), and the
  formats date, time, date-time, uuid, email, ipv4, ipv6, hostname, uri, uri-reference, byte
  (FORMATS), enforced (as llguidance does); any other format is a `GrammarError`, not an
  annotation. Together they are one regular language, intersected (automaton.py).
- integers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` exactly (a digit-range
  grammar, any size), `multipleOf` (a remainder automaton). numbers: the same bounds, fractional
  ones exactly too, and no exponent when bounded; a decimal `multipleOf` exactly (its digits read
  with the point at its place, decimal arithmetic), no exponent.
- `not` where it has a positive reading (required keys, a type test, string keywords, properties
  of those); `if`/`then`/`else` where `if` has one (a type test, a discriminator's const); dependencies as unions (key absent, or present
  with what it requires); every other use is a `GrammarError`.

Whitespace (`JsonOptions.whitespace`): "flexible" (the default, llguidance's and xgrammar's):
any run of space, tab, CR, LF between tokens, none before the first or after the last token;
"compact" (`disable_any_whitespace`): exactly `json.dumps(separators=(",", ":"))`; or a regex
(`whitespace_pattern`) used at every place whitespace may go.
"""

from __future__ import annotations

from pyengine.structured.json_schema.compiler import (SchemaCompiler, any_json_object_grammar, json_schema_expr,
                                                      json_schema_grammar)
from pyengine.structured.json_schema.keywords import UNSUPPORTED_KEYWORDS, JsonOptions
from pyengine.structured.json_schema.merge import merge
from pyengine.structured.json_schema.strings import FORMATS, embed_grammar

__all__ = ["FORMATS", "JsonOptions", "SchemaCompiler", "UNSUPPORTED_KEYWORDS", "any_json_object_grammar",
           "embed_grammar", "json_schema_expr", "json_schema_grammar", "merge"]
