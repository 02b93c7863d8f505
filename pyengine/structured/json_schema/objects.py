"""Objects: declared properties in order, required ones mandatory, and additional keys that are
none of the declared names (decided on the key's canonically escaped text)."""

from __future__ import annotations

import functools
import itertools
import re
from typing import Any

from pyengine.structured import automaton
from pyengine.structured.automaton import subtract_points
from pyengine.structured.grammar import ByteSet, GrammarError, GrammarLimitError, literal_items
from pyengine.structured.json_schema.keywords import ANNOTATIONS, as_list, json_text, nonneg_int
from pyengine.structured.json_schema.merge import merge
from pyengine.structured.json_schema.strings import ESCAPES, string_term

MAX_COUNTED_MEMBERS = 1_000  # minProperties/maxProperties bounds (rules grow with the bound)
MAX_PATTERNS = 4  # patternProperties in one object (the keys split into 2**n classes)

_KEY_ASCII = [(0x20, 0x21), (0x23, 0x5B), (0x5D, 0x7F)]  # ASCII a key may hold unescaped (not " or \\)


class Objects:
    """The object grammars (a mixin of `SchemaCompiler`: uses its builder `b`, options and shared pieces)."""

    def object(self, schema: dict) -> Any:
        """Declared properties in order (required ones mandatory), then additional keys: those
        matching a `patternProperties` pattern take its schema, the rest `additionalProperties`;
        `propertyNames` limits every key; `minProperties`/`maxProperties` count the members."""
        b = self.b
        props = schema.get("properties") or {}
        if not isinstance(props, dict):
            raise GrammarError("properties must be an object")
        patterns = schema.get("patternProperties") or {}
        if not isinstance(patterns, dict):
            raise GrammarError("patternProperties must be an object")
        required = as_list(schema.get("required", []), "required")
        additional = schema.get("additionalProperties", False if self.options.strict_objects and "properties" in schema
                                else True)
        key_names = schema.get("propertyNames", True)
        names = list(props) + [r for r in required if r not in props]
        required_names = set(required)  # (each one hashed already, just above)
        members = []  # (the member's elements in a row, required)
        for name in names:
            matching = [sub for pattern, sub in patterns.items() if _search(pattern, name)] if patterns else []
            sub = props[name] if name in props else (True if matching else additional)
            for extra_schema in matching:  # a declared key also meets every pattern it matches
                sub = merge(sub, extra_schema, self)
            expr = self.schema(sub) if _name_allowed(key_names, name) else None
            if expr is None:
                if name in required_names:
                    return None  # a required property no value can satisfy
                continue
            member = b.seq(self.json_string_literal(name), self.token(":"), expr)
            members.append((b.as_items(member), name in required_names))  # a long member becomes one rule
        if patterns or key_names is not True and key_names != {}:
            extra = self.pattern_members(names, patterns, additional, key_names)
        else:
            extra_value = self.schema(additional)
            extra = None if extra_value is None else b.seq(self.key_except(names), self.token(":"), extra_value)
        low = nonneg_int(schema, "minProperties", 0)
        high = nonneg_int(schema, "maxProperties", None)
        body = self.members(members, extra, low, high)
        return None if body is None else b.seq(b.literal("{"), self.ws(), *body, self.ws(), b.literal("}"))

    def members(self, members: list[tuple[tuple, bool]], extra: Any, low: int, high: int | None) -> tuple | None:
        """The members in order (each given as its elements in a row), each optional one optional,
        then any number of `extra` ones, with between `low` and `high` members in all: as elements
        in a row, or None when no count can be met.

        The rules are written out directly with `GrammarBuilder.rule`, not through seq/alt: every
        declared property of every object passes here, and the alternatives are distinct anyway
        (a member taken starts with its key or a comma, one skipped does not)."""
        b = self.b
        comma = self.token(",")
        comma_items = b.as_items(comma)
        cap = high if high is not None else low  # counts past `low` are all alike when unbounded
        if cap > MAX_COUNTED_MEMBERS:
            raise GrammarLimitError(f"minProperties/maxProperties above {MAX_COUNTED_MEMBERS} are not supported")

        def bump(count: int) -> int | None:  # the count after one more member; None past `high`
            if high is not None:
                return count + 1 if count + 1 <= high else None
            return min(count + 1, low)

        def extras(count: int, lead: bool) -> tuple | None:  # extra members after `count` ones (lead: a comma first)
            need = max(low - count, 0)
            most = None if high is None else high - count
            if most is not None and most < need:
                return None
            if extra is None or most == 0:
                return () if need == 0 else None
            step = b.seq(comma, extra)
            if lead:
                return b.as_items(b.repeat(step, need, most))
            run = b.seq(extra, b.repeat(step, max(need - 1, 0), None if most is None else most - 1))
            return b.as_items(run if need else b.opt(run))

        def rule(hint: str, *alternatives: tuple | None) -> tuple | None:  # None: admits nothing
            alternatives = [a for a in alternatives if a is not None]
            return (b.rule(alternatives, hint),) if alternatives else None

        # Both helpers walk the members with a loop, not a call per member: a schema may declare
        # thousands of properties, and one Python call per member would hit the recursion limit.
        after_rules: dict[tuple[int, int], tuple | None] = {}

        def after(i: int, count: int) -> tuple | None:  # members i.. once `count` (>= 1) were written
            todo = [(i, count)]  # depth first, in the order a recursive walk would build the rules
            while todo:
                key = todo[-1]
                if key in after_rules:
                    todo.pop()
                    continue
                at, written = key
                if at == len(members):
                    after_rules[key] = extras(written, lead=True)
                    todo.pop()
                    continue
                items, req = members[at]
                more = bump(written)
                needs = ([] if more is None else [(at + 1, more)]) + ([] if req else [(at + 1, written)])
                missing = [need for need in needs if need not in after_rules]
                if missing:
                    todo.extend(reversed(missing))  # the member taken first, then the member skipped
                    continue
                take = None if more is None else _row(comma_items, items, after_rules[(at + 1, more)])
                # A rule even for a required member: the rule is referenced from two places when
                # the member before is optional (taken, or skipped), which keeps objects linear.
                after_rules[key] = rule("obj_after", take, None if req else after_rules[(at + 1, written)])
                todo.pop()
            return after_rules[(i, count)]

        if low == 0 and high is None and members:
            # No count to keep (`bump` is always 0): the members after each one are one chain,
            # written here from the end, in the order `after(1, 0)` would write it, without its
            # bookkeeping (most objects take this path).
            after_rules[(len(members), 0)] = extras(0, lead=True)
            for at in range(len(members) - 1, 0, -1):
                items, req = members[at]
                rest = after_rules[(at + 1, 0)]
                after_rules[(at, 0)] = rule("obj_after", _row(comma_items, items, rest), None if req else rest)

        def first() -> tuple | None:  # the members when none was written yet
            takes = []  # an optional member taken as the first one, for each leading optional member
            for i, (items, req) in enumerate(members):
                more = bump(0)
                take = None if more is None else _row(items, after(i + 1, more))
                if req:
                    rest = take
                    break
                takes.append(take)
            else:
                rest = extras(0, lead=False)
            for take in reversed(takes):  # the first optional member written, or skipped
                rest = rule("obj_first", take, rest)
            return rest

        return first()

    def pattern_members(self, names: list[str], patterns: dict, additional: Any, key_names: Any) -> Any:
        """One member whose key is none of `names`: a key matching some patterns takes all their
        schemas, a key matching none takes `additional`; every key meets `propertyNames`."""
        if len(patterns) > MAX_PATTERNS:
            raise GrammarLimitError(f"more than {MAX_PATTERNS} patternProperties in one object")
        b = self.b
        searched = [automaton.search(automaton.parse_regex(p)) for p in patterns]
        base = [automaton.complement(automaton.alt(*map(automaton.literal, names)))]
        if key_names is not True and key_names != {}:
            base.append(_key_names_term(key_names))
        parts = []
        for chosen in itertools.product((True, False), repeat=len(patterns)):
            value: Any = True
            if not any(chosen):
                value = additional
            for yes, sub in zip(chosen, patterns.values()):
                if yes:
                    value = merge(value, sub, self)
            expr = self.schema(value)
            if expr is None:
                continue
            term = automaton.both(*base, *[t if yes else automaton.complement(t) for yes, t in zip(chosen, searched)])
            key = automaton.automaton_of(term).element(b, json_string=True)
            if key is not None:
                parts.append(b.seq(b.literal('"'), key, b.literal('"'), self.token(":"), expr))
        return self.alt(parts)

    def key_except(self, names: list[str]) -> Any:
        """A JSON string key whose (canonically escaped) text is none of `names`.

        The names' units form a trie; the key is read along it, one left-linear rule per trie node
        (`node ::= parent unit`: "these units were read"), and may end at any node where no name
        ends, or leave the trie with a unit no name goes on with and then hold any characters. Left
        linear, every item of a key started where the key did, so leaving the trie after "ab" or
        after "xyz" leads to one parser state (a right-linear trie would make a state per exit
        point, and a mask at a key's start meets hundreds of them). Objects with the same names
        share these rules (`key_excepts`, one entry per grammar and list of names)."""
        shared = self.key_excepts.get(tuple(names))
        if shared is None:
            shared = self.key_excepts[tuple(names)] = self._key_except(names)
        return shared

    def _key_except(self, names: list[str]) -> Any:
        b = self.b
        trie: dict = {}
        for name in names:
            node = trie
            for unit in _name_units(name):
                child = node.get(unit)
                if child is None:
                    child = node[unit] = {}
                node = child
            node[None] = True  # a declared name ends here
        key_char = self.key_char_any()
        rest = self._shared("key_rest")  # any key characters
        ends: list[tuple] = []  # the key ends inside the trie: its units so far
        exits: list[tuple] = []  # the key leaves the trie: its units so far, then another one
        # (the rules are written out directly, with `rule`: this runs for every object that allows
        # additional properties, and the alternatives are distinct by construction; the loop is
        # plain on purpose, it runs once per character of every declared name)
        rule, key_other = b.rule, self.key_other
        todo: list[tuple[dict, tuple]] = [(trie, ())]  # (node, the elements that read its units)
        while todo:
            node, read = todo.pop()
            if None in node:
                children = tuple([unit for unit in node if unit is not None])
            else:
                ends.append(read)
                children = tuple(node)
            if not children:
                exits.append((*read, key_char))
                continue
            for unit in children:
                todo.append((node[unit], (rule([read + _unit_items(unit)], "key"),)))
            exits += [read + other for other in key_other(children)]
        if exits:
            ends.append((rule(exits, "key_exit"), rest))
        return b.seq(b.literal('"'), rule(ends, "key"), b.literal('"'))

    def key_char_any(self) -> Any:
        """Any canonical character unit of a key (one rule per grammar)."""
        return self._shared("key_char")

    def _key_char_any(self) -> Any:
        return self._rule("key_char", self.key_char_except([]))

    def _non_ascii_char(self) -> Any:
        """Any character past ASCII (its 2-4 UTF-8 bytes), one rule per grammar."""
        return self._shared("non_ascii")

    def key_other(self, units: tuple[str, ...]) -> list[tuple]:
        """Alternatives (for `GrammarBuilder.rule`) of one canonical character unit of a key not in
        `units` (made once per grammar and `units`: most trie nodes have one unit, and the same few
        recur)."""
        alternatives = self.key_others.get(units)
        if alternatives is None:
            alternatives = self.key_others[units] = self._key_other(units)
        return alternatives

    def _key_other(self, units: tuple[str, ...]) -> list[tuple]:
        b = self.b
        if all(len(u) == 1 and u < "\x80" for u in units):  # the usual case: excluding a few ASCII characters
            ascii_set = _key_ascii_except(frozenset(units))
            ascii_ = [(ascii_set,)] if ascii_set is not None else []
            return ascii_ + [(self._shared("key_wide"),)]  # non-ASCII and escapes: one rule for every key
        other = self.key_char_except(list(units))
        return [b.as_items(other)] if other is not None else []

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
        escapes = key_escapes(units)
        parts += [b.literals(escapes)] if escapes else []
        return b.alt(*parts) if parts else None



def key_escapes(units: list[str]) -> list[str]:
    """The escapes a canonical key may use (json.dumps' short forms and \\u00XX), minus `units`."""
    escapes = [e for e in ('\\"', "\\\\", "\\b", "\\f", "\\n", "\\r", "\\t") if e not in units]
    return escapes + ["\\u%04x" % c for c in range(0x20) if c not in ESCAPES and "\\u%04x" % c not in units]


_unit_items = functools.lru_cache(maxsize=4096)(literal_items)  # a key unit's bytes (the same few recur)


@functools.lru_cache(maxsize=4096)
def _name_units(name: str) -> tuple[str, ...]:
    """A property name's canonical JSON text (no quotes), one unit per character (cached: schemas
    repeat their property names)."""
    return tuple(key_units(json_text(name)[1:-1]))


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



def _row(*parts: tuple | None) -> tuple | None:
    """The elements of the parts in a row, or None when a part is None (admits nothing)."""
    return None if None in parts else tuple(itertools.chain.from_iterable(parts))


def _search(pattern: str, name: str) -> bool:
    """Whether a declared name matches a pattern, decided as JSON Schema validators do (Python's re)."""
    try:
        return re.search(pattern, name) is not None
    except re.error:
        raise GrammarError(f"patternProperties: {pattern!r} is not a regex Python can read") from None


def _name_allowed(key_names: Any, name: str) -> bool:
    """Whether a declared name meets `propertyNames` (a schema for strings)."""
    if key_names is True or key_names == {}:
        return True
    if key_names is False:
        return False
    term = _key_names_term(key_names)
    return not automaton.automaton_of(automaton.both(term, automaton.literal(name))).is_empty()


def _key_names_term(key_names: Any) -> tuple:
    """`propertyNames` as the regular language of the keys' text."""
    if key_names is False:
        return automaton.NONE
    if not isinstance(key_names, dict):
        raise GrammarError("propertyNames must be a schema")
    known = {"type", "pattern", "format", "minLength", "maxLength", "enum", "const"} | ANNOTATIONS
    if any(k not in known for k in key_names) or key_names.get("type", "string") != "string":
        raise GrammarError("propertyNames is supported as a string schema (pattern, format, lengths, enum, const)")
    term = string_term(key_names)
    values = [key_names["const"]] if "const" in key_names else key_names.get("enum")
    if values is not None:
        term = automaton.both(term, automaton.alt(*[automaton.literal(v) for v in values if isinstance(v, str)]))
    return term


@functools.lru_cache(maxsize=4096)
def _key_ascii_except(units: frozenset[str]) -> ByteSet | None:
    """The ASCII characters a key may hold raw, but none of `units` (None if that leaves none).
    Cached: every trie node of every object's undeclared keys asks, mostly for the same few."""
    ranges = subtract_points(_KEY_ASCII, {ord(u) for u in units})
    return ByteSet(tuple(ranges)) if ranges else None  # sorted, never adjacent: a ByteSet as it is
