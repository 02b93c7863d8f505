"""The keywords beyond the basics, each checked with `jsonschema` both ways: what the grammar accepts
is valid, and the valid instances listed are accepted (the invalid ones rejected)."""

from __future__ import annotations

import ipaddress
import json
import random

import jsonschema
import pytest

from pyengine.structured import GrammarError, JsonOptions, json_schema_grammar
from pyengine.structured.matcher import matches

PLAIN = JsonOptions(disable_additional_properties=False)
CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER
DRAFT7 = "http://json-schema.org/draft-07/schema#"


def check(schema, good, bad, options=PLAIN):
    grammar = json_schema_grammar(schema, options)
    validator = jsonschema.validators.validator_for(schema, jsonschema.Draft202012Validator)(schema, format_checker=CHECKER)
    for value in good:
        assert validator.is_valid(value), f"test data: {value!r} should be valid"
        assert matches(grammar, json.dumps(value, ensure_ascii=False).encode()), value
    for value in bad:
        assert not validator.is_valid(value), f"test data: {value!r} should be invalid"
        assert not matches(grammar, json.dumps(value, ensure_ascii=False).encode()), value


@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "string", "pattern": "^[a-z]+$", "maxLength": 3}, ["a", "abc"], ["", "abcd", "aB"]),
    ({"type": "string", "pattern": "[0-9]", "minLength": 3}, ["a1b", "123", "x\"9"], ["12", "abc"]),
    ({"type": "string", "format": "date", "pattern": "^2024-"}, ["2024-02-29"], ["2023-01-02", "2024-02-30"]),
    ({"type": "string", "format": "email", "maxLength": 8}, ["a@b.cd"], ["abcdef@ghij.kl"]),
    ({"type": "string", "format": "uuid", "minLength": 36}, ["123e4567-e89b-12d3-a456-426614174000"], ["x"]),
    ({"type": "string", "pattern": "^$|(^[a-z]+$)"}, ["", "abc"], ["a1", " a"]),
    ({"type": "string", "pattern": "(^a|b$)"}, ["ax", "xb", "ab"], ["xa", "bx"]),
    ({"type": "string", "pattern": "^\\d{3}$", "minLength": 4}, [], ["123", "1234"]),
])
def test_string_languages_intersect(schema, good, bad):
    if not good:  # an empty intersection: no string at all
        with pytest.raises(GrammarError, match="admits no value"):
            json_schema_grammar(schema, PLAIN)
        return
    check(schema, good, bad)


def test_ipv6_addresses_are_what_pythons_ipaddress_accepts():
    grammar = json_schema_grammar({"type": "string", "format": "ipv6"})
    good = ["::", "::1", "1:2:3:4:5:6:7:8", "fe80::1", "1::", "2001:db8::8a2e:370:7334", "::ffff:192.0.2.1",
            "1:2:3:4:5:6:1.2.3.4", "a:b::c:1.2.3.4"]
    bad = ["1::2::3", ":1", "1:2:3:4:5:6:7", "12345::", "::1.2.3", "g::", "1:2:3:4:5:6:7:8:9", "::01.2.3.4"]
    for text in good:
        ipaddress.IPv6Address(text)
        assert matches(grammar, json.dumps(text).encode()), text
    for text in bad:
        assert not matches(grammar, json.dumps(text).encode()), text
    rng = random.Random(0)  # random spellings: whatever the grammar takes, ipaddress takes
    for _ in range(300):
        groups = [format(rng.randrange(0, 1 << rng.choice([4, 8, 16])), "x") for _ in range(8)]
        start, stop = sorted(rng.sample(range(9), 2))
        text = ":".join(groups[:start]) + "::" + ":".join(groups[stop:]) if rng.random() < 0.7 else ":".join(groups)
        if matches(grammar, json.dumps(text).encode()):
            ipaddress.IPv6Address(text)


@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "object", "patternProperties": {"^x-": {"type": "integer"}}},
     [{}, {"x-a": 1}, {"other": "s"}, {"x-a": 1, "y": [1]}], [{"x-a": "s"}]),
    ({"type": "object", "patternProperties": {"^[a-z]+$": {"type": "string"}}, "additionalProperties": False},
     [{"ab": "x"}, {}], [{"aB": "x"}, {"ab": 1}, {"1": "x"}]),
    ({"type": "object", "properties": {"id": {"type": "integer"}}, "patternProperties": {"^d": {"minimum": 5}},
      "additionalProperties": {"type": "boolean"}, "required": ["id"]},
     [{"id": 1}, {"id": 2, "d": 7}, {"id": 3, "z": True}], [{"id": 1, "d": 3}, {"id": 1, "z": 1}, {"d": 9}]),
    ({"type": "object", "patternProperties": {"a": {"type": "integer"}, "b": {"minimum": 0}}},
     [{"ab": 1}, {"a": -1}, {"b": 0.5}], [{"ab": -1}, {"ab": 0.5}, {"b": -1}]),
    ({"type": "object", "properties": {"a1": {"type": "integer"}}, "patternProperties": {"[0-9]": {"maximum": 5}}},
     [{"a1": 5}], [{"a1": 6}]),  # a declared key also meets the patterns it matches
    ({"type": "object", "propertyNames": {"pattern": "^[a-c]+$", "maxLength": 2}},
     [{"a": 1}, {"bc": None}], [{"abc": 1}, {"d": 1}]),
    ({"type": "object", "minProperties": 1, "maxProperties": 2},
     [{"a": 1}, {"a": 1, "b": 2}], [{}, {"a": 1, "b": 2, "c": 3}]),
    ({"type": "object", "properties": {"a": {}, "b": {}, "c": {}}, "minProperties": 2, "additionalProperties": False},
     [{"a": 1, "c": 2}, {"a": 1, "b": 2, "c": 3}], [{}, {"b": 1}]),
    ({"type": "object", "properties": {"a": {}}, "required": ["a"], "maxProperties": 1},
     [{"a": 1}], [{"a": 1, "b": 2}, {}]),
])
def test_object_keywords(schema, good, bad):
    check(schema, good, bad)


def test_strict_objects_keep_pattern_keys():
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}, "patternProperties": {"^x-": {}}}
    grammar = json_schema_grammar(schema)
    assert matches(grammar, b'{"id": 1, "x-trace": "t"}') and not matches(grammar, b'{"id": 1, "y": 2}')


@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "number", "minimum": 0.1, "maximum": 1}, [0.1, 0.5, 1, 0.10001, 1.0], [0.09, 0, 1.01, -0.5]),
    ({"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 2.25}, [0.51, 1, 2.2499, 2], [0.5, 2.25, 3]),
    ({"type": "number", "minimum": -1.5, "maximum": -0.25}, [-1.5, -1, -0.25, -0.3], [-1.51, -0.2, 0, 1]),
    ({"type": "number", "minimum": -0.5, "exclusiveMaximum": 0.5}, [-0.5, 0, 0.49, -0.1], [0.5, -0.51, 1]),
    ({"type": "number", "exclusiveMinimum": -2.5}, [-2.4, 0, 100.5], [-2.5, -3]),
    ({"type": "number", "maximum": 99.99}, [99.99, -1000, 0], [100, 99.991]),
    ({"type": "integer", "minimum": 0.5, "maximum": 3.5}, [1, 3], [0, 4]),
])
def test_fractional_bounds_are_exact(schema, good, bad):
    check(schema, good, bad)
    grammar = json_schema_grammar(schema)
    validator = jsonschema.Draft202012Validator(schema)
    rng = random.Random(1)
    for _ in range(300):  # any decimal text the grammar takes is in range
        text = f"{rng.uniform(-4, 4):.{rng.randrange(0, 4)}f}"
        if matches(grammar, text.encode()):
            assert validator.is_valid(json.loads(text)), text


def test_a_ref_may_name_an_anchor():
    schema = {"type": "object", "properties": {"a": {"$ref": "#pos"}},
              "$defs": {"p": {"$anchor": "pos", "type": "integer", "minimum": 1}}}
    check(schema, [{"a": 1}], [{"a": 0}, {"a": "x"}])
    with pytest.raises(GrammarError, match="anchor 'nope'"):
        json_schema_grammar({"$ref": "#nope"})


@pytest.mark.parametrize("schema, good, bad", [
    ({"if": {"type": "string"}, "then": {"maxLength": 2}, "else": {"type": "integer"}}, ["ab", 3], ["abc", 1.5, None]),
    ({"if": {"type": "number"}, "then": {"minimum": 0}}, [0, 2.5, "x", None], [-1, -0.5]),
    ({"type": ["string", "null"], "if": {"type": "null"}, "else": {"minLength": 1}}, [None, "a"], ["", 1]),
])
def test_if_then_else_on_a_type_test(schema, good, bad):
    check(schema, good, bad)


@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "object", "if": {"properties": {"kind": {"const": "x"}}, "required": ["kind"]},
      "then": {"required": ["a"]}, "else": {"required": ["b"]}},
     [{"kind": "x", "a": 1}, {"kind": "y", "b": 2}, {"b": 1}], [{"kind": "x", "b": 1}, {"kind": "y", "a": 1}, {}, 5]),
    ({"if": {"properties": {"kind": {"enum": ["x", "y"]}}}, "then": {"required": ["a"]}},
     [{"kind": "x", "a": 1}, {"a": 1}, {"kind": "z"}, 5, "s"], [{"kind": "y"}, {}]),
    ({"if": {"properties": {"v": {"const": 1}}}, "then": {"required": ["a"]}, "else": {"required": ["b"]}},
     [{"v": 1, "a": 0}, {"v": 2, "b": 0}, {"v": 0.5, "b": 0}, {"v": "1", "b": 0}],
     [{"v": 1, "b": 0}, {"v": 2, "a": 0}, {"v": True, "a": 0}]),
    ({"if": {"const": True}, "then": {"const": True}, "else": {"type": ["integer", "null"]}}, [True, 3, None],
     [False, "x", 1.5]),
    ({"if": {"const": None}, "else": {"type": "string"}}, [None, "x"], [1, False]),
])
def test_if_then_else_on_a_discriminator(schema, good, bad):
    # not (kind == "x"): an object with kind present and another value; any other value passes the
    # `if` vacuously, so it takes the `then` side
    check(schema, good, bad)


def test_if_then_else_on_other_conditions_is_refused():
    with pytest.raises(GrammarError, match="if, then"):
        json_schema_grammar({"if": {"properties": {"a": {"minimum": 1}}}, "then": {"required": ["b"]}})


@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "integer", "multipleOf": 7}, [0, 7, -14, 700], [1, -6, 7.5]),
    ({"type": "integer", "multipleOf": 5, "minimum": 1, "maximum": 20}, [5, 20], [0, 25, 3]),
    ({"type": "number", "multipleOf": 3, "exclusiveMinimum": -4.5}, [-3, 0, 9], [-6, 4, 1.5]),
    ({"allOf": [{"type": "integer", "multipleOf": 4}, {"multipleOf": 6}]}, [12, 24, 0], [4, 6, 18]),
])
def test_integer_multiples(schema, good, bad):
    check(schema, good, bad)


@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "number", "multipleOf": 0.25}, [0, 0.25, -1.5, 3, 12.75], [0.1, 0.3, -0.125, 1.05]),
    ({"type": "number", "multipleOf": 0.01, "exclusiveMinimum": 0, "maximum": 1}, [0.01, 0.5, 1], [0, 0.005, 1.01]),
    ({"type": "number", "multipleOf": 1.5, "minimum": -3}, [-3, 0, 4.5, 3], [-4.5, 1, 2.25]),
    ({"type": "integer", "multipleOf": 0.5}, [0, 1, -7], [0.5, 1.5]),
    ({"type": "number", "multipleOf": 0.07}, [0.07, 0.14], [0.1, 0.35000001]),
])
def test_decimal_multiples(schema, good, bad):
    check(schema, good, bad)


def test_decimal_multiples_are_read_with_decimal_arithmetic():
    # 0.3 is a multiple of 0.1 (3 tenths) and 7 one of 0.07, as the specification's division says,
    # though in binary floats 0.3 / 0.1 is 2.9999999999999996 and 7 / 0.07 is 100.00000000000001 (the
    # `jsonschema` library divides floats, so it calls both invalid); a fraction digit past the step's
    # places may only be 0, and an exponent is not written.
    grammar = json_schema_grammar({"type": "number", "multipleOf": 0.1}, PLAIN)
    assert matches(grammar, b"0.3") and matches(grammar, b"-12.30") and matches(grammar, b"7")
    assert matches(json_schema_grammar({"type": "number", "multipleOf": 0.07}, PLAIN), b"7")
    assert not matches(grammar, b"0.31") and not matches(grammar, b"3e-1") and not matches(grammar, b"0.")


def test_a_decimal_step_past_the_state_limit_is_refused():
    with pytest.raises(GrammarError, match="multipleOf 314159e-5 needs more than"):
        json_schema_grammar({"type": "number", "multipleOf": 3.14159})


@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "string", "not": {"enum": ["1", "3"]}}, ["2", "", "13"], ["1", "3"]),
    ({"not": {"enum": ["1", "3"]}}, ["2", 1, None, [1]], ["1", "3"]),
    ({"not": {"pattern": "^a"}}, ["b", "", "ba"], ["a", "ab", 1, None]),
    ({"type": "string", "not": {"anyOf": [{"pattern": "^[0-9]+$"}, {"maxLength": 1}]}}, ["ab", "a1"], ["12", "x", ""]),
    ({"type": "object", "not": {"required": ["a"]}}, [{}, {"b": 1}], [{"a": 1}]),
    ({"not": {"required": ["a"]}}, [{}, {"b": 1}], [{"a": 1}, 5, "x", None]),  # a non-object has every key
    ({"allOf": [{"enum": ["abc", "ghi"]}, {"not": {"enum": ["ghi"]}}]}, ["abc"], ["ghi", "x"]),  # merged with an enum
    ({"type": "object", "not": {"required": ["a", "b"]}}, [{"a": 1}, {"b": 2}, {}], [{"a": 1, "b": 2}]),
    ({"not": {"type": ["string", "null"]}}, [1, 1.5, [], {}, True], ["x", None]),
])
def test_not_of_the_forms_that_have_a_positive_reading(schema, good, bad):
    check(schema, good, bad)


def test_other_nots_are_refused():
    with pytest.raises(GrammarError, match="not"):
        json_schema_grammar({"type": "integer", "not": {"multipleOf": 7}})


@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "object", "dependentRequired": {"a": ["b"]}}, [{}, {"b": 1}, {"a": 1, "b": 2}], [{"a": 1}]),
    ({"$schema": DRAFT7, "type": "object", "dependencies": {"a": ["b", "c"]}}, [{"a": 1, "b": 2, "c": 3}, {"c": 1}], [{"a": 1, "b": 2}]),
    ({"type": "object", "properties": {"a": {}, "n": {}},
      "dependentSchemas": {"a": {"properties": {"n": {"type": "integer"}}}}}, [{"a": 1, "n": 2}, {"n": "x"}],
     [{"a": 1, "n": "x"}]),
    ({"$schema": DRAFT7, "type": "object", "dependencies": {"a": {"required": ["z"]}}}, [{"a": 1, "z": 0}, {}], [{"a": 1}]),
])
def test_dependencies(schema, good, bad):
    check(schema, good, bad)


def test_two_nots_merge_into_one():
    schema = {"type": "object", "allOf": [{"not": {"required": ["a"]}}, {"not": {"required": ["b"]}}]}
    check(schema, [{}, {"c": 1}], [{"a": 1}, {"b": 1}])
