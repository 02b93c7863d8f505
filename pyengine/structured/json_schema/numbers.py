"""Integers and numbers with bounds: decimal digit-range grammars, exact at any size."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from pyengine.structured import automaton
from pyengine.structured.automaton import NONE, alt, both, chars, complement, literal, repeat, seq, star
from pyengine.structured.grammar import GrammarError, GrammarLimitError
from pyengine.structured.json_schema.keywords import TYPE_KEYWORDS

MAX_INT_DIGITS = 400  # integer bounds larger than this many digits are an error (limits the rules)


class Numbers:
    """The integer and number grammars (a mixin of `SchemaCompiler`: uses its builder `b`)."""

    def multiples(self, schema: dict, integer: bool = False) -> Any:
        """The multiples of `multipleOf` between the bounds. An integer step's are written as integers
        (also where the type is number); a decimal step's as decimals, exactly (`decimal_multiples`);
        for an integer type, the integers among a decimal step's multiples."""
        step = schema["multipleOf"]
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step < math.inf:
            raise GrammarError(f"multipleOf must be a number above 0, got {step!r}")
        units, places = decimal_step(step)
        if integer and places:  # x * 10**places % units == 0, x an integer
            units, places = units // math.gcd(units, 10**places), 0
        if places:
            lo, lo_open, hi, hi_open = exact_bounds(schema)
            if lo is not None and hi is not None and (lo > hi or (lo == hi and (lo_open or hi_open))):
                return None
            term = both(decimal_multiples(units, places), bounded_decimals(lo, lo_open, hi, hi_open))
            return automaton.automaton_of(term).element(self.b)
        step = units
        lo, hi = integer_bounds(schema, integer=True)
        if lo is not None and hi is not None and lo > hi:
            return None
        sign = alt(literal("-"), seq())
        term = both(seq(sign, _NATURAL), seq(sign, automaton.multiple_of(int(step))),
                    bounded_decimals(lo, False, hi, False))
        return automaton.automaton_of(term).element(self.b)

    def integer(self, lo: int | None, hi: int | None) -> Any:
        if lo is not None and hi is not None and lo > hi:
            return None
        for bound in (lo, hi):
            if bound is not None and len(str(abs(bound))) > MAX_INT_DIGITS:
                raise GrammarLimitError(f"integer bound {bound} has more than {MAX_INT_DIGITS} digits")
        parts = []
        if lo is None or lo < 0:  # negative part: '-' and a magnitude in [max(1, -hi), -lo]
            mag_lo = 1 if hi is None or hi >= 0 else -hi
            mag_hi = None if lo is None else -lo
            if mag_hi is None or mag_lo <= mag_hi:
                parts.append(self.b.seq(self.b.literal("-"), self.naturals(mag_lo, mag_hi)))
        if hi is None or hi >= 0:
            parts.append(self.naturals(max(lo or 0, 0), hi))
        return self.alt(parts)

    def naturals(self, lo: int, hi: int | None) -> Any:
        """Decimal naturals in [lo, hi] (hi None: unbounded), without leading zeros."""
        b = self.b
        digit = b.char_class([(ord("0"), ord("9"))])
        nonzero = b.char_class([(ord("1"), ord("9"))])
        parts = []
        top = len(str(hi)) if hi is not None else len(str(lo))
        for width in range(len(str(lo)), top + 1):
            low = lo if width == len(str(lo)) else 10 ** (width - 1)
            high = hi if hi is not None and width == len(str(hi)) else 10 ** width - 1
            if low <= high:
                parts.append(self.digit_range(str(low), str(high)))
        if hi is None:  # every longer number
            parts.append(b.seq(nonzero, b.repeat(digit, len(str(lo)), None)))
        return self.alt(parts)

    def digit_range(self, low: str, high: str) -> Any:
        """Strings of len(low) digits between low and high (equal lengths) in numeric order."""
        b = self.b
        if len(low) == 1:
            return b.char_class([(ord(low), ord(high))])
        if low[0] == high[0]:
            return b.seq(b.literal(low[0]), self.digit_range(low[1:], high[1:]))
        rest = len(low) - 1
        if low[1:] == "0" * rest and high[1:] == "9" * rest:
            return b.seq(b.char_class([(ord(low[0]), ord(high[0]))]), b.repeat(b.char_class([(48, 57)]), rest, rest))
        parts = [b.seq(b.literal(low[0]), self.digit_range(low[1:], "9" * rest))]
        if ord(high[0]) - ord(low[0]) > 1:
            parts.append(b.seq(b.char_class([(ord(low[0]) + 1, ord(high[0]) - 1)]),
                               b.repeat(b.char_class([(48, 57)]), rest, rest)))
        parts.append(b.seq(b.literal(high[0]), self.digit_range("0" * rest, high[1:])))
        return b.alt(*parts)

    def number(self, schema: dict) -> Any:
        """JSON numbers; with bounds, exactly the numbers between them, written without an exponent."""
        if not any(k in schema for k in TYPE_KEYWORDS["number"]):
            return self._shared("number")
        if "multipleOf" in schema:
            return self.multiples(schema)
        exact = exact_bounds(schema)
        if any(isinstance(v, float) and not v.is_integer() for v in (exact[0], exact[2])):
            return automaton.automaton_of(bounded_decimals(*exact)).element(self.b)
        b = self.b
        fraction = b.seq(b.literal("."), b.plus(b.char_class([(48, 57)])))
        lo, lo_open, hi, hi_open = real_bounds(schema)
        if lo is not None and hi is not None and (lo > hi or (lo == hi and (lo_open or hi_open))):
            return None
        zero_fraction = b.seq(b.literal("."), b.plus(b.literal("0")))
        nonzero_fraction = b.seq(b.literal("."), b.star(b.char_class([(48, 57)])), b.char_class([(49, 57)]),
                                 b.star(b.char_class([(48, 57)])))
        parts = []
        # x >= 0 written I.F: I >= a (or I == a with F > 0 when open); I <= b - 1, or I == b with F == 0.
        if hi is None or hi > 0 or (hi == 0 and not hi_open):
            parts += self._magnitudes(max(lo, 0) if lo is not None else 0, lo_open and lo is not None and lo >= 0,
                                      hi, hi_open, "", fraction, zero_fraction, nonzero_fraction)
        if lo is None or lo < 0:  # x < 0 written -(I.F), |x| in (max(0, -hi), -lo]
            m_lo = 0 if hi is None or hi >= 0 else -hi
            m_lo_open = True if hi is None or hi >= 0 else hi_open
            parts += self._magnitudes(m_lo, m_lo_open, None if lo is None else -lo, lo_open, "-", fraction,
                                      zero_fraction, nonzero_fraction)
        return self.alt(parts)

    def _any_number(self) -> Any:
        """Every JSON number (shared: see `_shared`)."""
        b = self.b
        digits = b.plus(b.char_class([(48, 57)]))
        fraction = b.seq(b.literal("."), digits)
        exponent = b.seq(b.char_class([(ord("e"), ord("e")), (ord("E"), ord("E"))]),
                         b.opt(b.char_class([(ord("+"), ord("+")), (ord("-"), ord("-"))])), digits)
        return b.seq(b.opt(b.literal("-")), self.naturals(0, None), b.opt(fraction), b.opt(exponent))

    def _magnitudes(self, lo: int, lo_open: bool, hi: int | None, hi_open: bool, sign: str,
                    fraction: Any, zero_fraction: Any, nonzero_fraction: Any) -> list[Any]:
        """Numbers `sign I[.F]` whose magnitude I.F lies between integer bounds lo and hi."""
        b = self.b
        prefix = [b.literal(sign)] if sign else []
        parts = []
        first_any = lo + 1 if lo_open else lo  # I from here on takes any fraction
        last_any = None if hi is None else hi - 1  # ... up to here
        if last_any is None or first_any <= last_any:
            parts.append(b.seq(*prefix, self.naturals(first_any, last_any), b.opt(fraction)))
        if lo_open and (hi is None or lo < hi):  # I == lo, F > 0
            parts.append(b.seq(*prefix, self.naturals(lo, lo), nonzero_fraction))
        if hi is not None and not hi_open and hi >= first_any:  # I == hi, F == 0
            if not (sign and hi == 0):  # -0 is written 0
                parts.append(b.seq(*prefix, self.naturals(hi, hi), b.opt(zero_fraction)))
        return parts


def integer_bounds(schema: dict, integer: bool) -> tuple[int | None, int | None]:
    """Integer bounds, closed: an open bound moves one step inward."""
    lo, lo_open, hi, hi_open = real_bounds(schema)
    if lo is not None and lo_open:
        lo += 1
    if hi is not None and hi_open:
        hi -= 1
    return lo, hi


def real_bounds(schema: dict) -> tuple[Any, bool, Any, bool]:
    """`exact_bounds` with fractional bounds rounded inward to integers (closed)."""
    lo, lo_open, hi, hi_open = exact_bounds(schema)
    # Fractional bounds are rounded inward to integers, closed (stricter, never looser).
    if isinstance(lo, float) and not lo.is_integer():
        lo, lo_open = math.ceil(lo), False
    if isinstance(hi, float) and not hi.is_integer():
        hi, hi_open = math.floor(hi), False
    return (None if lo is None else int(lo)), lo_open, (None if hi is None else int(hi)), hi_open


def exact_bounds(schema: dict) -> tuple[Any, bool, Any, bool]:
    """(lo, lo exclusive, hi, hi exclusive) from both the draft-4 and the draft-6+ spellings, as written."""
    lo = hi = None
    lo_open = hi_open = False
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        value = schema.get(key)
        if value is None or isinstance(value, bool):
            continue
        if not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            raise GrammarError(f"{key} must be a finite number, got {value!r}")
    if isinstance(schema.get("minimum"), (int, float)):
        lo, lo_open = schema["minimum"], schema.get("exclusiveMinimum") is True
    if isinstance(schema.get("maximum"), (int, float)):
        hi, hi_open = schema["maximum"], schema.get("exclusiveMaximum") is True
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_lo, (int, float)) and not isinstance(ex_lo, bool) and (lo is None or ex_lo >= lo):
        lo, lo_open = ex_lo, True
    if isinstance(ex_hi, (int, float)) and not isinstance(ex_hi, bool) and (hi is None or ex_hi <= hi):
        hi, hi_open = ex_hi, True
    return lo, lo_open, hi, hi_open


# -- decimal bounds as regular languages (automaton terms) -------------------------------------------------
# A number here is [-]I[.F] (no exponent). Against a bound bI.bF, x >= bound when I > bI, or I == bI
# and the fraction F compares >= bF digit by digit (missing digits are zeros); likewise >, <=, <.

_DIGIT = chars([(0x30, 0x39)])
_DIGITS = star(_DIGIT)
_NATURAL = alt(literal("0"), seq(chars([(0x31, 0x39)]), _DIGITS))  # no leading zeros
_FRACTION = alt(seq(literal("."), _DIGIT, _DIGITS), seq())  # optional


def decimal_step(step: int | float) -> tuple[int, int]:
    """`step` as units / 10**places, exactly as written (0.25 -> (25, 2); 3 -> (3, 0); 1e-05 -> (1, 5))."""
    _, digits, exponent = _decimal(step).normalize().as_tuple()
    units = int("".join(map(str, digits)))
    if not isinstance(exponent, int):
        raise GrammarError(f"multipleOf must be a finite number, got {step!r}")
    return (units * 10**exponent, 0) if exponent >= 0 else (units, -exponent)


def decimal_multiples(units: int, places: int) -> tuple:
    """Numbers [-]I[.F] (no exponent) that are multiples of units / 10**places, exactly: the digits IF,
    padded with zeros to `places` fraction digits, are a multiple of units, and a fraction digit past
    the places-th is 0 (one automaton state per remainder and fraction digit read)."""
    if units * (places + 2) > automaton.MAX_STATES:
        raise GrammarLimitError(f"multipleOf {units}e-{places} needs more than {automaton.MAX_STATES} automaton states")
    number = seq(_NATURAL, alt(seq(), seq(literal("."), _DIGIT, _DIGITS)))
    return seq(alt(literal("-"), seq()), both(number, automaton.multiple_of(units, places)))


def bounded_decimals(lo: Any, lo_open: bool, hi: Any, hi_open: bool) -> tuple:
    """The numbers (as text, no exponent) between lo and hi (None: unbounded), exactly."""
    magnitude = seq(_NATURAL, _FRACTION)
    lo_d = None if lo is None else _decimal(lo)
    hi_d = None if hi is None else _decimal(hi)
    parts = []
    # x >= 0 (written without '-'): bounds apply to x itself.
    if hi_d is None or hi_d > 0 or (hi_d == 0 and not hi_open):
        terms = [magnitude]
        if lo_d is not None and (lo_d > 0 or (lo_d == 0 and lo_open)):
            terms.append(_compare(lo_d, ">" if lo_open else ">="))
        if hi_d is not None:
            terms.append(_compare(hi_d, "<" if hi_open else "<="))
        parts.append(both(*terms))
    # x < 0, written '-' m with m > 0: x >= lo is m <= -lo, x <= hi is m >= -hi.
    if lo_d is None or lo_d < 0:
        terms = [magnitude, _compare(Decimal(0), ">")]
        if lo_d is not None:
            terms.append(_compare(-lo_d, "<" if lo_open else "<="))
        if hi_d is not None and hi_d < 0:
            terms.append(_compare(-hi_d, ">" if hi_open else ">="))
        parts.append(seq(literal("-"), both(*terms)))
    return alt(*parts) if parts else NONE


def _decimal(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _compare(bound: Decimal, op: str) -> tuple:
    """Magnitudes I[.F] (bound >= 0) that compare with `bound` by op (one of > >= < <=)."""
    text = format(bound, "f")
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0")
    n = int(whole)
    if op in (">", ">="):
        above = both(_NATURAL, complement(_naturals_up_to(n)))  # I > bI
        return alt(seq(above, _FRACTION), seq(literal(whole), _fraction_at_least(fraction, op == ">")))
    below = _naturals_up_to(n - 1)  # I < bI
    return alt(seq(below, _FRACTION), seq(literal(whole), _fraction_at_most(fraction, op == "<")))


def _naturals_up_to(n: int) -> tuple:
    """Naturals (no leading zeros) <= n."""
    if n < 0:
        return NONE
    text = str(n)
    width = len(text)
    parts = [seq(chars([(0x31, 0x39)]), repeat(_DIGIT, 0, width - 2))] if width >= 2 else []
    parts.append(literal("0"))
    for k in range(width):  # same width: equal up to k, then a smaller digit, then anything
        low = 0x31 if k == 0 and width > 1 else 0x30
        if ord(text[k]) - 1 >= low:
            parts.append(seq(literal(text[:k]), chars([(low, ord(text[k]) - 1)]), repeat(_DIGIT, width - k - 1,
                                                                                     width - k - 1)))
    parts.append(literal(text))
    return alt(*parts)


def _fraction_at_least(digits: str, strict: bool) -> tuple:
    """'' or '.F' with 0.F >= 0.digits (> when strict); digits has no trailing zero."""
    if not digits:
        return seq(literal("."), _DIGITS, chars([(0x31, 0x39)]), _DIGITS) if strict else _FRACTION
    return seq(literal("."), _digits_at_least(digits, strict))


def _digits_at_least(digits: str, strict: bool) -> tuple:
    if not digits:
        return seq(_DIGITS, chars([(0x31, 0x39)]), _DIGITS) if strict else _DIGITS
    d = ord(digits[0])
    bigger = seq(chars([(d + 1, 0x39)]), _DIGITS) if d < 0x39 else NONE
    return alt(bigger, seq(literal(digits[0]), _digits_at_least(digits[1:], strict)))


def _fraction_at_most(digits: str, strict: bool) -> tuple:
    """'' or '.F' with 0.F <= 0.digits (< when strict); digits has no trailing zero."""
    if not digits:
        return NONE if strict else alt(seq(), seq(literal("."), literal("0"), star(literal("0"))))
    return alt(seq(), seq(literal("."), _digits_at_most(digits, strict)))


def _digits_at_most(digits: str, strict: bool) -> tuple:
    if not digits:
        return NONE if strict else star(literal("0"))
    d = ord(digits[0])
    smaller = seq(chars([(0x30, d - 1)]), _DIGITS) if d > 0x30 else NONE
    return alt(smaller, seq(literal(digits[0]), _digits_at_most(digits[1:], strict)))
