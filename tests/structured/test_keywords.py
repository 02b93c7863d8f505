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


def check(schema, good, bad, options=PLAIN):
    grammar = json_schema_grammar(schema, options)
    validator = jsonschema.Draft202012Validator(schema, format_checker=CHECKER)
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
