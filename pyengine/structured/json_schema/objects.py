"""Objects: declared properties in order, required ones mandatory, and additional keys that are
none of the declared names (decided on the key's canonically escaped text)."""

from __future__ import annotations

from typing import Any

from pyengine.structured.grammar import ByteSet, GrammarError
from pyengine.structured.json_schema.keywords import json_text, as_list, subtract_points
from pyengine.structured.json_schema.strings import ESCAPES

_KEY_ASCII = [(0x20, 0x21), (0x23, 0x5B), (0x5D, 0x7F)]  # ASCII a key may hold unescaped (not " or \\)


class Objects:
    """The object grammars (a mixin of `SchemaCompiler`: uses its builder `b`, options and shared pieces)."""

    def object(self, schema: dict) -> Any:
        b = self.b
        props = schema.get("properties") or {}
        if not isinstance(props, dict):
            raise GrammarError("properties must be an object")
        required = as_list(schema.get("required", []), "required")
        additional = schema.get("additionalProperties", False if self.options.strict_objects and "properties" in schema
                                else True)
        names = list(props) + [r for r in required if r not in props]
        members = []  # (expression, required)
        for name in names:
            sub = props.get(name, additional if name not in props else None)
            expr = self.schema(props[name] if name in props else sub)
            if expr is None:
                if name in required:
                    return None  # a required property no value can satisfy
                continue
            key = self.json_string_literal(name)
            members.append((b.seq(key, self.token(":"), expr), name in required))
        extra_value = self.schema(additional)
        extra = None
        if extra_value is not None:
            extra = b.seq(self.key_except(names), self.token(":"), extra_value)
        comma = self.token(",")
        tail = b.star(b.seq(comma, extra)) if extra is not None else b.seq()

        # after[i]: members i.. when one was already written (each after a comma).
        after: list[Any] = [None] * (len(members) + 1)
        after[len(members)] = tail
        for i in range(len(members) - 1, -1, -1):
            expr, req = members[i]
            step = b.seq(comma, expr)
            after[i] = self._shared_rule("obj_after", b.seq(step if req else b.opt(step), after[i + 1]))
        # first[i]: members i.. when none was written yet.
        first = b.opt(b.seq(extra, tail)) if extra is not None else b.seq()
        for i in range(len(members) - 1, -1, -1):
            expr, req = members[i]
            with_it = b.seq(expr, after[i + 1])
            first = with_it if req else self._shared_rule("obj_first", b.alt(with_it, first))
        return b.seq(b.literal("{"), self.ws(), first, self.ws(), b.literal("}"))

    def _shared_rule(self, hint: str, expr: Any) -> Any:
        """A rule for an expression referenced twice (keeps object grammars linear in size)."""
        name = self.b.new_rule(hint)
        self.b.define(name, expr)
        return self.b.ref(name)

    def key_except(self, names: list[str]) -> Any:
        """A JSON string key whose (canonically escaped) text is none of `names`."""
        b = self.b
        units_of = [key_units(json_text(n)[1:-1]) for n in names]
        trie: dict = {}
        for units in units_of:
            node = trie
            for unit in units:
                node = node.setdefault(unit, {})
            node[None] = True  # a declared name ends here
        key_char = self.key_char_any()
        rest = self._shared("key_rest")  # any key characters

        # One rule per trie node, its alternatives written out directly (this runs for every object
        # that allows additional properties, so it skips seq/alt): they are distinct by construction.
        def after(node: dict) -> tuple:
            """The elements for the rest of a key, once the units leading to `node` are written."""
            children = [u for u in node if u is not None]
            if not children:  # past every name: any characters, at least one if a name ends here
                return (rest,) if None not in node else (key_char, rest)
            alternatives = [] if None in node else [()]  # the key may end here, unless a name does
            for unit in children:
                alternatives.append((*b.as_items(b.literal(unit)), *after(node[unit])))
            alternatives += self.key_other(children)
            return (b.rule(alternatives, "key"),)

        return b.seq(b.literal('"'), *after(trie), b.literal('"'))

    def key_char_any(self) -> Any:
        """Any canonical character unit of a key (one rule per grammar)."""
        return self._shared("key_char")

    def _key_char_any(self) -> Any:
        return self._rule("key_char", self.key_char_except([]))

    def _non_ascii_char(self) -> Any:
        """Any character past ASCII (its 2-4 UTF-8 bytes), one rule per grammar."""
        return self._shared("non_ascii")

    def key_other(self, units: list[str]) -> list[tuple]:
        """Alternatives (for `GrammarBuilder.rule`) of a key going on with a character unit not in
        `units`, then any characters."""
        b = self.b
        rest = self._shared("key_rest")
        if all(len(u) == 1 and u < "\x80" for u in units):  # the usual case: excluding a few ASCII characters
            ascii_ranges = subtract_points(_KEY_ASCII, {ord(u) for u in units})
            # Sorted and never adjacent (each cut leaves a gap), so a ByteSet as it is.
            ascii_ = [(ByteSet(tuple(ascii_ranges)), rest)] if ascii_ranges else []
            return ascii_ + [(self._shared("key_tail"),)]  # non-ASCII and escapes: one rule for every key
        other = self.key_char_except(units)
        return [(*b.as_items(other), rest)] if other is not None else []

    def key_char_except(self, units: list[str]) -> Any:
        """One canonical character unit of a key (raw char or short escape) not in `units`."""
        b = self.b
        excluded = {ord(u) for u in units if not u.startswith("\\")}
        if all(point < 0x80 for point in excluded):  # the usual case: one byte set + the shared non-ASCII rule
            ascii_ranges = subtract_points(_KEY_ASCII, excluded)
            parts = ([b.byte_set(ascii_ranges)] if ascii_ranges else []) + [self._non_ascii_char()]
        else:
            ranges = subtract_points([(0x20, 0x21), (0x23, 0x5B), (0x5D, 0x10FFFF)], excluded)
            parts = [b.char_class(ranges)] if ranges else []
        if not any(u.startswith("\\") for u in units):  # the usual case: every escape, one shared rule
            return b.alt(*parts, self._shared("key_escapes"))
        parts += [b.literal(e) for e in key_escapes(units)]
        return b.alt(*parts) if parts else None



def key_escapes(units: list[str]) -> list[str]:
    """The escapes a canonical key may use (json.dumps' short forms and \\u00XX), minus `units`."""
    escapes = [e for e in ('\\"', "\\\\", "\\b", "\\f", "\\n", "\\r", "\\t") if e not in units]
    return escapes + ["\\u%04x" % c for c in range(0x20) if c not in ESCAPES and "\\u%04x" % c not in units]


def key_units(text: str) -> list[str]:
    """A JSON string's content (as json.dumps writes it) split into one unit per character."""
    units, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            size = 6 if text[i + 1] == "u" else 2
            units.append(text[i:i + size])
            i += size
        else:
            units.append(text[i])
            i += 1
    return units

