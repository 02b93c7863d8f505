"""JSON Schema -> Grammar: keyword by keyword, then hypothesis schemas with valid and invalid instances.

The property that matters most is soundness: the grammar never accepts a document the schema
rejects (checked with the `jsonschema` library). Where the compiler is exact, valid instances
serialised with json.dumps are accepted too.
"""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyengine.structured import GrammarError, GrammarLimitError, JsonOptions, compile_grammar, json_schema_grammar
from pyengine.structured.constraints import cache_info
from pyengine.structured.matcher import matches

COMPACT = JsonOptions("compact")
PLAIN = JsonOptions(disable_additional_properties=False)  # JSON Schema's own semantics, undeclared keys allowed


def accepts(schema, text: str, options: JsonOptions = JsonOptions()) -> bool:
    return matches(json_schema_grammar(schema, options), text.encode())


@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "integer", "minimum": -15, "maximum": 123}, ["-15", "0", "123", "99", "-9"], ["-16", "124", "01", "-0", "1.0"]),
    ({"type": "integer", "exclusiveMinimum": 5}, ["6", "99999"], ["5", "0", "-1"]),
    ({"type": "integer", "minimum": 5, "exclusiveMinimum": True}, ["6"], ["5"]),  # draft 4 spelling
    ({"type": "number", "minimum": 0, "maximum": 5}, ["0", "0.5", "5", "5.0", "4.999"], ["-1", "5.1", "-0.5", "1e1"]),
    ({"type": "number", "exclusiveMinimum": 0}, ["0.1", "1", "0.0001"], ["0", "0.0", "-1"]),
    ({"type": "number", "minimum": -2.5, "exclusiveMaximum": 0}, ["-2", "-1.5", "-0.1"], ["0", "-3", "1"]),
    ({"type": "number"}, ["1", "-0.5", "1e10", "2.5E-3"], ["01", ".5", "1.", "+1"]),
    ({"type": "string", "minLength": 2, "maxLength": 3}, ['"ab"', '"a\\nb"', '"ééé"', '"\\u00e9x"'], ['"a"', '"abcd"']),
    ({"type": "string", "pattern": "^a\"b+$"}, ['"a\\"bb"'], ['"a"bb"', '"ab"']),
    ({"type": "string", "pattern": "[0-9]{3}"}, ['"xx123yy"', '"123"'], ['"12"']),
    ({"type": "string", "format": "date"}, ['"2024-02-29"', '"2000-02-29"', '"2023-12-31"', '"2023-04-30"'],
     ['"2024-13-01"', '"24-01-01"', '"2023-02-29"', '"1900-02-29"', '"2024-02-30"', '"2024-04-31"', '"0000-01-01"']),
    ({"type": "string", "format": "date-time"}, ['"2020-01-02T10:00:00Z"', '"2020-01-02T10:00:00.5+01:00"'],
     ['"2020-01-02 10:00:00Z"', '"2020-02-30T10:00:00Z"']),
    ({"type": "string", "format": "time"}, ['"23:59:59Z"', '"00:00:00.25-05:30"'], ['"12:00:60Z"', '"12:00:00"']),
    ({"type": "string", "format": "uuid"}, ['"123e4567-e89b-12d3-a456-426614174000"'], ['"123e4567"']),
    ({"type": "string", "format": "ipv4"}, ['"192.168.0.255"'], ['"256.1.1.1"', '"1.2.3"']),
    ({"type": "string", "format": "email"}, ['"a.b@example.com"'], ['"a@b"', '"@x.com"']),
    ({"enum": ["a", 1, None, {"x": [1, 2]}]}, ['"a"', "1", "null", '{"x": [1, 2]}', '{"x":[1,2]}'], ['"b"', "2"]),
    ({"const": "hi"}, ['"hi"'], ['"ho"']),
    ({"type": ["string", "null"]}, ['"x"', "null"], ["1"]),
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["b"]},
     ['{"b": "x"}', '{"a": 1, "b": "x"}', '{"a":1,"b":"x","c":[1, 2]}', '{ "b" : "x" }'],
     ['{"a": 1}', '{"b":"x","a":1}', '{"b":"x","b":"y"}', ' {"b":"x"}', '{"b":"x",}', '{"b":"x","a":"no"}']),
    ({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False},
     ["{}", '{"a": 1}'], ['{"b": 1}', '{"a": 1, "b": 2}']),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, ['{"x": 1, "y": 2}'], ['{"x": "s"}']),
    ({"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 3},
     ["[true]", "[true, false, true]"], ["[]", "[true,true,true,true]"]),
    ({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
     ["[]", "[1]", '[1, "a"]'], ['[1, "a", 2]', '["a"]']),
    ({"type": "array", "items": [{"type": "integer"}], "additionalItems": {"type": "string"}},  # draft 4
     ["[1]", '[1, "a", "b"]'], ['[1, 2]']),
    ({"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 1}]}, ["1", '"a"'], ['"ab"', "true"]),
    ({"oneOf": [{"type": "integer"}, {"type": "boolean"}]}, ["1", "true"], ['"a"']),
    ({"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"type": "string"}}, "required": ["b"]}]},
     ['{"a": 1, "b": "x"}'], ['{"a": 1}', '{"b": "x"}']),
    ({"allOf": [{"properties": {"a": {}}, "additionalProperties": False}, {"properties": {"b": {}}}]},
     ['{"a": 1}', "{}"], ['{"b": 1}']),  # b is an additional property of the first branch
    ({"$defs": {"n": {"type": "object", "properties": {"v": {"type": "integer"},
                                                         "next": {"anyOf": [{"$ref": "#/$defs/n"}, {"type": "null"}]}},
                      "required": ["v", "next"], "additionalProperties": False}}, "$ref": "#/$defs/n"},
     ['{"v": 1, "next": {"v": 2, "next": null}}'], ['{"v": 1}', '{"v": 1, "next": {"v": 2}}']),
    ({"definitions": {"s": {"type": "string"}}, "properties": {"a": {"$ref": "#/definitions/s"}}},
     ['{"a": "x"}', "3"], ['{"a": 3}']),  # no "type": every type, objects checked
    (True, ['{"a": [1, {"b": null}]}', "1", '"x"'], ["{", "nul"]),
])
def test_keywords(schema, good, bad):
    grammar = json_schema_grammar(schema, PLAIN)
    for text in good:
        assert matches(grammar, text.encode()), text
    for text in bad:
        assert not matches(grammar, text.encode()), text


@pytest.mark.parametrize("fmt, good, bad", [
    ("date", ["2024-02-29", "2000-02-29", "0001-01-01", "9999-12-31"],
     ["2023-02-29", "1900-02-29", "2024-04-31", "2024-06-31", "0000-01-01", "2024-00-10"]),
    ("time", ["23:59:59Z", "00:00:00.25-05:30", "12:30:00z"], ["12:00:60Z", "23:59:60Z", "24:00:00Z", "12:00:00"]),
    ("date-time", ["2024-02-29T23:59:59.5+01:00"], ["2023-02-29T10:00:00Z", "2024-01-01T10:00:60Z"]),
    ("uuid", ["123e4567-e89b-12d3-a456-426614174000"], ["123e4567-e89b-12d3-a456-42661417400"]),
    ("ipv4", ["0.0.0.0", "255.255.255.255"], ["256.1.1.1", "01.2.3.4"]),
])
def test_formats_agree_with_jsonschema_format_checker(fmt, good, bad):
    """What the grammar lets a model write passes the check users run: jsonschema's format checker."""
    schema = {"type": "string", "format": fmt}
    grammar = json_schema_grammar(schema)
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    assert fmt in checker.checkers, f"jsonschema cannot check {fmt!r} here (time needs rfc3339-validator)"
    for value in good:
        assert matches(grammar, json.dumps(value).encode()), value
        jsonschema.validate(value, schema, format_checker=checker)
    for value in bad:
        assert not matches(grammar, json.dumps(value).encode()), value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(value, schema, format_checker=checker)


def test_whitespace_policies():
    schema = {"type": "object", "properties": {"a": {"type": "array"}}}
    assert accepts(schema, '{"a": [1, 2]}') and accepts(schema, '{\n  "a" : [ 1 ,2 ]\n}')
    assert not accepts(schema, ' {"a": []}') and not accepts(schema, '{"a": []} ')  # none outside the document
    assert accepts(schema, '{"a":[1,2]}', COMPACT) and not accepts(schema, '{"a": [1,2]}', COMPACT)
    dashes = JsonOptions.from_switches(whitespace_pattern="-?")
    assert accepts(schema, '{-"a"-:-[1,-2]-}', dashes) and not accepts(schema, '{ "a": []}', dashes)


def test_objects_take_only_declared_keys_unless_plain_semantics_are_asked_for():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    plain = JsonOptions.from_switches(disable_additional_properties=False)
    strict = JsonOptions.from_switches(disable_additional_properties=True)
    assert JsonOptions() == strict  # the default
    assert not accepts(schema, '{"a": 1, "b": 2}') and not accepts(schema, '{"a": 1, "b": 2}', strict)
    assert accepts(schema, '{"a": 1, "b": 2}', plain)
    assert accepts(schema, '{"a": 1}') and accepts(schema, "{}")
    # What the schema says is kept: additional keys allowed, or held to a schema.
    assert accepts(dict(schema, additionalProperties=True), '{"a": 1, "b": 2}')
    typed = dict(schema, additionalProperties={"type": "string"})
    assert accepts(typed, '{"a": 1, "b": "x"}') and not accepts(typed, '{"a": 1, "b": 2}')
    # An object schema without properties is any object; allOf parts are closed once merged.
    assert accepts({"type": "object"}, '{"z": [1]}')
    both = {"allOf": [schema, {"properties": {"b": {"type": "integer"}}}]}
    assert accepts(both, '{"a": 1, "b": 2}') and not accepts(both, '{"a": 1, "c": 2}')


def test_additional_keys_never_repeat_a_declared_name():
    schema = {"properties": {"ab": {"type": "integer"}}, "additionalProperties": {"type": "string"}, "type": "object"}
    assert accepts(schema, '{"a": "x", "abc": "y", "b": "z"}')
    assert not accepts(schema, '{"ab": 1, "ab": "x"}') and not accepts(schema, '{"ab": "x"}')


def test_objects_with_the_same_names_share_the_rules_of_their_undeclared_keys():
    names = {"": {}, "type": {}, "subtype": {}, "typed": {}, "a\u00e9": {}}
    one = {"type": "array", "prefixItems": [{"type": "object", "properties": names}]}
    two = {"type": "array", "prefixItems": [{"type": "object", "properties": names},
                                            {"type": "object", "properties": dict(names)}]}

    def key_rules(schema):
        return sum(name.startswith("key_") for name in json_schema_grammar(schema, PLAIN).rules)

    assert key_rules(one) == key_rules(two) > 0
    ok = '[{"type": 1}, {"typed": 1, "typ": 2, "types": 3, "yped": 4, "a": 5, "a\u00e9x": 6, " ": 7, "\\n": 8}]'
    assert accepts(two, ok, PLAIN)
    for repeated in ('""', '"type"', '"subtype"', '"a\u00e9"'):  # a declared name never comes back as another key
        assert not accepts(two, f'[{{}}, {{{repeated}: 1, {repeated}: 2}}]', PLAIN)


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}, "x": {"type": "number"}},
     "required": ["name"]},
    {"$defs": {"t": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/t"}}}}},
     "$ref": "#/$defs/t"},
    {"type": "object", "properties": {"é\n": {"enum": ["a", 1, None]}}, "additionalProperties": {"type": "string"}},
    {"type": "array", "items": {}},
])
def test_prebuilt_shared_rules_are_only_a_cache(schema):
    """Copying in the prebuilt schema-independent rules (ws, strings, any value, key characters) gives
    the very grammar that building them in place gives, rule for rule (only the names differ)."""
    from pyengine.structured.json_schema import SchemaCompiler

    for options in (JsonOptions(), COMPACT):
        copied = SchemaCompiler(schema, options).compile_root()
        built_here = SchemaCompiler(schema, options, use_library=False).compile_root()
        assert copied.to_flat()[:4] == built_here.to_flat()[:4]


def test_a_whitespace_pattern_is_only_compiled_where_whitespace_goes():
    bad = JsonOptions.from_switches(whitespace_pattern="(")
    assert matches(json_schema_grammar({"type": "string"}, bad), b'"a"')
    with pytest.raises(GrammarError):
        json_schema_grammar({"type": "array"}, bad)


@pytest.mark.parametrize("schema, needle", [
    ({"type": "integer", "not": {"multipleOf": 3}}, "not"),
    ({"type": "object", "dependentRequired": {k: ["x"] for k in "abcde"}}, "dependentRequired"),
    ({"type": "array", "uniqueItems": True, "contains": {}}, "uniqueItems, contains"),
    ({"if": {"minimum": 3}, "then": {"maximum": 5}}, "if, then"),
    ({"type": "number", "multipleOf": 0}, "multipleOf must be a number above 0"),
    ({"type": "number", "multipleOf": float("inf")}, "multipleOf must be a number above 0"),
    ({"type": "string", "format": "uri-template"}, "format 'uri-template'"),
    ({"$ref": "http://example.com/s.json"}, "only local references"),
    ({"$ref": "#/$defs/missing"}, "points at nothing"),
    ({"type": "strng"}, "unknown type"),
    ({"allOf": [{"pattern": "a"}, {"pattern": "b"}]}, "cannot merge"),
    (False, "admits no value"),
    ({"enum": []}, "admits no value"),
    ("{not json", "not valid JSON"),
])
def test_unsupported_or_invalid_schemas_say_why(schema, needle):
    with pytest.raises(GrammarError) as info:
        json_schema_grammar(schema)
    assert needle in str(info.value)


def test_trivial_uses_of_unsupported_keywords_are_fine():
    grammar = json_schema_grammar({"type": "array", "uniqueItems": False, "patternProperties": {}, "minProperties": 0})
    assert matches(grammar, b"[]") and matches(grammar, b"[1,1]")  # repeats allowed: uniqueItems is off
    assert not matches(grammar, b"{}")  # still an array


def test_limits_are_grammar_limit_errors():
    with pytest.raises(GrammarLimitError):
        json_schema_grammar({"type": "integer", "maximum": 10 ** 500})
    nested: dict = {"type": "integer"}
    for _ in range(300):
        nested = {"type": "array", "items": nested}
    with pytest.raises(GrammarLimitError):
        json_schema_grammar(nested)


def test_compile_cache_returns_the_same_grammar():
    schema = {"type": "object", "properties": {"cached": {"type": "integer"}}}
    first = compile_grammar("json", schema)
    assert compile_grammar("json", dict(schema)) is first and cache_info() >= 1
    assert compile_grammar("json", schema, COMPACT) is not first  # the switches are part of the key
    # by content: the same schema as JSON text, spaced any way, is the same entry (one compile per process)
    assert compile_grammar("json", json.dumps(schema)) is first
    assert compile_grammar("json", json.dumps(schema, indent=2)) is first
    reordered = {"properties": schema["properties"], "type": "object"}
    assert compile_grammar("json", reordered) is not first  # key order is kept: it orders properties


def test_a_repeated_response_format_compiles_once(monkeypatch):
    from pyengine.structured import constraints

    compiled = []
    monkeypatch.setattr(constraints, "json_schema_grammar", lambda *a: compiled.append(a) or json_schema_grammar(*a))
    schema = {"type": "object", "properties": {"compiled_once": {"type": "string", "maxLength": 9}}}
    grammars = {id(compile_grammar("json", text)) for text in [schema, json.dumps(schema), json.dumps(schema, indent=1)]}
    assert len(grammars) == 1 and len(compiled) == 1


# -- hypothesis: random schemas, instances drawn from them, random documents ---------------------------

SCALARS = st.one_of(
    st.just({"type": "null"}), st.just({"type": "boolean"}),
    st.builds(lambda lo, span: {"type": "integer", "minimum": lo, "maximum": lo + span},
              st.integers(-1000, 1000), st.integers(0, 2000)),
    st.just({"type": "integer"}), st.just({"type": "number"}),
    st.builds(lambda lo, extra: {"type": "string", "minLength": lo, "maxLength": lo + extra},
              st.integers(0, 3), st.integers(0, 4)),
    st.lists(st.one_of(st.text(max_size=4), st.integers(-5, 5), st.booleans()), min_size=1, max_size=4, unique=True)
    .map(lambda values: {"enum": values}),
)


def _object(children):
    props = st.dictionaries(st.text("abcxyz_é\"", min_size=1, max_size=4), children, max_size=4)
    return st.builds(lambda p, req, extra: {"type": "object", "properties": p,
                                             "required": [k for i, k in enumerate(p) if req >> i & 1],
                                             **({} if extra is None else {"additionalProperties": extra})},
                     props, st.integers(0, 15), st.one_of(st.none(), st.just(False), st.just({"type": "integer"})))


def _array(children):
    return st.builds(lambda items, lo, extra: {"type": "array", "items": items, "minItems": lo, "maxItems": lo + extra},
                     children, st.integers(0, 2), st.integers(0, 3))


SCHEMAS = st.recursive(SCALARS, lambda children: st.one_of(
    _object(children), _array(children), st.lists(children, min_size=1, max_size=3).map(lambda s: {"anyOf": s})),
    max_leaves=8)


def instance_of(schema: dict) -> st.SearchStrategy:
    """Values valid under the schemas SCHEMAS builds."""
    if "anyOf" in schema:
        return st.one_of([instance_of(s) for s in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema["type"]
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False))
    if kind == "string":
        return st.text(min_size=schema["minLength"], max_size=schema["maxLength"])
    if kind == "array":
        return st.lists(instance_of(schema["items"]), min_size=schema["minItems"], max_size=schema["maxItems"])
    required = schema["required"]
    optional = [k for k in schema["properties"] if k not in required]

    def build(present: list[str]) -> st.SearchStrategy:
        names = [k for k in schema["properties"] if k in required or k in present]
        return st.fixed_dictionaries({k: instance_of(schema["properties"][k]) for k in names}) \
            .map(lambda d: {k: d[k] for k in names})  # in schema order, as the grammar writes them

    return st.lists(st.sampled_from(optional), unique=True).flatmap(build) if optional else build([])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), SCHEMAS)
def test_valid_instances_are_accepted_compact_and_flexible(data, schema):
    instance = data.draw(instance_of(schema))
    jsonschema.validate(instance, schema)  # the generator is right
    assert accepts(schema, json.dumps(instance, separators=(",", ":"), ensure_ascii=False), COMPACT)
    assert accepts(schema, json.dumps(instance, ensure_ascii=False))
    assert accepts(schema, json.dumps(instance, indent=2))  # \\u escapes and newlines


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3000, 3000), st.text("ab\"é", max_size=5),
              st.floats(-100, 100, allow_nan=False)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text("abcxyz", max_size=3), children,
                                                                               max_size=4)),
    max_leaves=10)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCHEMAS, JSON_VALUES)
def test_never_accepts_an_invalid_document(schema, value):
    text = json.dumps(value, ensure_ascii=False)
    if accepts(schema, text):
        jsonschema.validate(json.loads(text), schema)


@pytest.mark.parametrize("parameters", [None, {}])
def test_a_tool_without_parameters_is_called_with_an_empty_object(parameters):
    calls = compile_grammar("tool_calls", ((("now", parameters),), 1, 1))
    assert matches(calls, b'<tool_call>\n{"name": "now", "arguments": {}}\n</tool_call>')
    assert not matches(calls, b'<tool_call>\n{"name": "now", "arguments": {"tz": "UTC"}}\n</tool_call>')
    plain = compile_grammar("tool_calls", ((("now", parameters),), 1, 1), PLAIN)
    assert matches(plain, b'<tool_call>\n{"name": "now", "arguments": {"tz": "UTC"}}\n</tool_call>')


def test_tool_arguments_take_only_declared_keys():
    tool = ("get_weather", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    calls = compile_grammar("tool_calls", ((tool,), 1, 1))
    assert matches(calls, b'<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>')
    assert not matches(calls, b'<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "x": 1}}'
                              b'\n</tool_call>')


def _ordered(first_keyword: str) -> dict:
    """Properties a (own) and b (from allOf), both required, the keyword `first_keyword` written first."""
    own = {"properties": {"a": {"type": "integer"}}, "required": ["a", "b"]}
    merged = {"allOf": [{"$ref": "#/$defs/b"}]}
    parts = [own, merged] if first_keyword == "properties" else [merged, own]
    return {"type": "object", **parts[0], **parts[1]}


@pytest.mark.parametrize("first, order", [("properties", "ab"), ("allOf", "ba")])
@pytest.mark.parametrize("depth", [0, 1, 2])
def test_properties_come_in_the_order_their_keywords_stand_at_every_depth(first, order, depth):
    schema = _ordered(first)
    for _ in range(depth):  # the same object as a property value, or behind a $ref
        schema = {"type": "object", "properties": {"x": schema}, "required": ["x"]}
    defs = {"b": {"properties": {"b": {"type": "integer"}}}}
    grammar = json_schema_grammar({**schema, "$defs": defs})
    document = {k: 1 for k in order}
    swapped = {k: 1 for k in reversed(order)}
    for _ in range(depth):
        document, swapped = {"x": document}, {"x": swapped}
    assert matches(grammar, json.dumps(document).encode())
    assert not matches(grammar, json.dumps(swapped).encode())


def test_an_object_with_ten_thousand_properties_compiles():
    """The members are walked with a loop: a call per member would pass Python's recursion limit
    (a 400 for a schema that is only large). The reference recognizer is too slow for a grammar
    this size, so what it accepts is checked on a small one built by the same code."""
    schema = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(10_000)}}
    for options in (JsonOptions(), JsonOptions(disable_additional_properties=False)):
        assert len(json_schema_grammar(schema, options).rules) > 10_000
    small = json_schema_grammar({"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(3)}})
    assert matches(small, b'{"p0": 1, "p2": 2}') and matches(small, b"{}")
    assert not matches(small, b'{"p2": 2, "p0": 1}') and not matches(small, b'{"q": 1}')
