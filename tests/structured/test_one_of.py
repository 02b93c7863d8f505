"""`oneOf`: compiled as a union only where its branches are proven disjoint, refused otherwise.

The property test draws small schemas mixing oneOf/anyOf/allOf, walks each compiled grammar at
random to produce documents it accepts (plus json.dumps of drawn values it accepts), and checks
every one with `jsonschema`: no accepted document may be invalid.
"""

from __future__ import annotations

import json
import random

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyengine.structured import GrammarError, JsonOptions, json_schema_grammar
from pyengine.structured.matcher import EarleyParser, matches

TAGGED = {"oneOf": [
    {"type": "object", "properties": {"kind": {"const": "circle"}, "r": {"type": "number"}}, "required": ["kind", "r"]},
    {"type": "object", "properties": {"kind": {"const": "square"}, "side": {"type": "number"}},
     "required": ["kind", "side"]},
]}
OVERLAPPING = {"oneOf": [
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
    {"type": "object", "properties": {"b": {"type": "string"}}, "required": ["b"]},
]}


def test_overlapping_branches_are_refused_with_the_schema_path():
    with pytest.raises(GrammarError, match=r"oneOf at #/properties/shape/oneOf: branches 0 and 1"):
        json_schema_grammar({"type": "object", "properties": {"shape": OVERLAPPING}})


def test_the_unsound_option_reads_oneof_as_anyof():
    grammar = json_schema_grammar(OVERLAPPING, JsonOptions(disable_additional_properties=False, unsound_one_of=True))
    assert matches(grammar, b'{"a": "x"}')
    assert matches(grammar, b'{"a": "x", "b": "y"}')  # valid under both branches: what "unsound" means


def test_a_required_key_the_other_branch_forbids_makes_the_branches_disjoint():
    closed = {"oneOf": [dict(branch, additionalProperties=False) for branch in OVERLAPPING["oneOf"]]}
    grammar = json_schema_grammar(closed)
    assert matches(grammar, b'{"a": "x"}') and matches(grammar, b'{"b": "y"}')
    assert not matches(grammar, b'{"a": "x", "b": "y"}')
    assert not jsonschema.Draft202012Validator(closed).is_valid({"a": "x", "b": "y"})


@pytest.mark.parametrize("schema, good, bad", [
    (TAGGED, ['{"kind": "circle", "r": 1}', '{"kind": "square", "side": 2}'], ['{"kind": "circle", "side": 2}']),
    ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, ['"x"', "7"], ["1.5", "null"]),
    ({"oneOf": [{"type": "integer", "maximum": 0}, {"type": "integer", "minimum": 1}]}, ["0", "1", "-5"], ["0.5"]),
    ({"oneOf": [{"type": "number", "exclusiveMaximum": 1}, {"type": "number", "minimum": 1}]}, ["0.5", "1", "7"], []),
    ({"oneOf": [{"enum": ["a", "b"]}, {"type": "string", "maxLength": 0}]}, ['"a"', '""'], ['"c"']),
    ({"oneOf": [{"type": "array", "maxItems": 1}, {"type": "array", "minItems": 2}]}, ["[]", "[1, 2]"], ["{}"]),
    ({"oneOf": [{"$ref": "#/$defs/a"}, {"type": "null"}], "$defs": {"a": {"type": "boolean"}}}, ["true", "null"], ["0"]),
    # Untyped tagged branches: every non-object matches both, so oneOf takes objects only.
    ({"oneOf": [{"properties": {"t": {"const": "a"}}, "required": ["t"]},
                {"properties": {"t": {"const": "b"}}, "required": ["t"]}]}, ['{"t": "a"}', '{"t": "b"}'],
     ["null", "5", '"x"', "[]", '{"t": "c"}']),
])
def test_disjoint_branches_compile_exactly(schema, good, bad):
    grammar = json_schema_grammar(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for text in good:
        assert validator.is_valid(json.loads(text)) and matches(grammar, text.encode()), text
    for text in bad:
        assert not matches(grammar, text.encode()), text


@pytest.mark.parametrize("schema", [
    {"oneOf": [{"type": "integer"}, {"type": "number"}]},  # 1 is both
    {"oneOf": [{"type": "string"}, {"type": "string", "minLength": 2}]},
    {"oneOf": [{"type": "object"}, {"required": ["a"]}]},  # the second admits every non-object too
    {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 5}, {"type": "integer", "minimum": 5}]},  # 5
])
def test_overlapping_branches_are_refused(schema):
    with pytest.raises(GrammarError, match="oneOf"):
        json_schema_grammar(schema)


# -- the property: every document a grammar accepts is valid ------------------------------------------

KEYS = ("a", "b", "c")
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.5, -1.5]),
                    st.sampled_from(["", "x", "yy"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=2),
                                                       st.dictionaries(st.sampled_from(KEYS), inner, max_size=2)),
                      max_leaves=4)
leaves = st.one_of(
    st.sampled_from([{"type": t} for t in ("null", "boolean", "integer", "number", "string", "array", "object")]),
    scalars.map(lambda v: {"const": v}),
    st.lists(scalars, min_size=1, max_size=3).map(lambda vs: {"enum": vs}),
    st.tuples(st.integers(-2, 2), st.integers(-2, 2)).map(lambda r: {"type": "integer", "minimum": r[0], "maximum": r[1]}),
    st.integers(0, 2).map(lambda n: {"type": "string", "maxLength": n}),
)


def objects(inner):
    return st.builds(
        lambda props, required, closed: {"type": "object", "properties": props, "required": sorted(set(required) & set(props)),
                                         **({"additionalProperties": False} if closed else {})},
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=2), st.lists(st.sampled_from(KEYS), max_size=2),
        st.booleans())


schemas = st.recursive(leaves, lambda inner: st.one_of(
    objects(inner),
    st.lists(inner, min_size=2, max_size=3).map(lambda bs: {"oneOf": bs}),
    st.lists(inner, min_size=2, max_size=3).map(lambda bs: {"anyOf": bs}),
    st.lists(inner, min_size=2, max_size=2).map(lambda bs: {"allOf": bs}),
), max_leaves=6)


def random_documents(grammar, rng: random.Random, tries: int = 12, max_bytes: int = 60) -> list[bytes]:
    """Documents the grammar accepts, found by walking its Earley parser one random allowed byte at a time."""
    parser = EarleyParser(grammar)
    rhs = parser.g.rhs
    members = [[byte for byte in range(256) if flags[byte]] for flags in parser.g.accepts]  # byte set -> its bytes
    found = []
    for _ in range(tries):
        depth = len(parser.sets)
        text = bytearray()
        while len(text) < max_bytes:
            if parser.is_accepting() and rng.random() < 0.25:
                found.append(bytes(text))
                break
            allowed = sorted({byte for alt, dot, *_ in parser.sets[-1].scans for byte in members[rhs[alt][dot][1]]})  # (BYTES, set index)
            ascii_first = [b for b in allowed if b < 0x80] or allowed
            if not ascii_first:
                break
            byte = rng.choice(ascii_first)
            parser.push_byte(byte)
            text.append(byte)
        while len(parser.sets) > depth:
            parser.pop()
    return found


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(schema=schemas, drawn=st.lists(values, max_size=8), seed=st.integers(0, 2**16))
def test_no_accepted_document_is_invalid(schema, drawn, seed):
    try:
        grammar = json_schema_grammar(schema)
    except GrammarError:
        return  # refused (an unproven oneOf, or contradictory keywords): nothing to accept
    validator = jsonschema.Draft202012Validator(schema)
    documents = random_documents(grammar, random.Random(seed))
    documents += [json.dumps(v).encode() for v in drawn if matches(grammar, json.dumps(v).encode())]
    for document in documents:
        assert validator.is_valid(json.loads(document)), (schema, document)
