"""Kubernetes resource quantities (``500m``, ``128Mi``, ``1.5``, ``1e3``, ``2G``).

The grammar (k8s.io/apimachinery/pkg/api/resource)::

    quantity        ::= signedNumber suffix
    suffix          ::= binarySI | decimalExponent | decimalSI
    binarySI        ::= Ki | Mi | Gi | Ti | Pi | Ei
    decimalSI       ::= m | "" | k | M | G | T | P | E
    decimalExponent ::= "e" signedNumber | "E" signedNumber
    signedNumber    ::= [+-] number
    number          ::= digits | digits "." digits | digits "." | "." digits

Values are exact ``fractions.Fraction``: ``100m`` is 1/10, never 0.1000001.
"""

from __future__ import annotations

import re

# Compiled on first use (re caches them), and fractions is imported only
# when a quantity is parsed: most manifests have none, and every ``run``
# imports this module.
_NUMBER = r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(.*)"
_EXPONENT = r"[eE]([+-]?[0-9]+)"

_BINARY_SI = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
# suffix -> (numerator, denominator)
_DECIMAL_SI = {
    "m": (1, 1000), "": (1, 1), "k": (10**3, 1), "M": (10**6, 1), "G": (10**9, 1),
    "T": (10**12, 1), "P": (10**15, 1), "E": (10**18, 1),
}
# Kubernetes itself caps quantities far below this; the cap keeps "1e999999999"
# from making a number with a billion digits.
_MAX_EXPONENT = 100


def parse_quantity(value) -> Fraction:  # noqa: F821 - imported below, on first use
    """The exact value of a Kubernetes quantity. Accepts the string forms and
    plain numbers (YAML ``cpu: 0.5``); raises ``ValueError`` otherwise."""
    from fractions import Fraction

    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not a quantity")
        # repr() is the shortest text that reads back as this float (0.1 -> "0.1"),
        # so the quantity is what the user wrote, not the binary approximation.
        return parse_quantity(repr(value))
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a quantity")
    match = re.fullmatch(_NUMBER, value, re.DOTALL)
    if not match:
        raise ValueError(f'"{value}" is not a quantity: it must be a number with an optional suffix '
                         "(m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3)")
    sign, number, suffix = match.groups()
    magnitude = Fraction(number if not number.endswith(".") else number[:-1])
    if suffix in _BINARY_SI:
        factor = Fraction(_BINARY_SI[suffix])
    elif suffix in _DECIMAL_SI:
        factor = Fraction(*_DECIMAL_SI[suffix])
    else:
        exponent = re.fullmatch(_EXPONENT, suffix)
        if not exponent:
            raise ValueError(f'"{value}" is not a quantity: unknown suffix "{suffix}" (use m, k, M, G, T, '
                             "P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like e3)")
        power = int(exponent.group(1))
        if abs(power) > _MAX_EXPONENT:
            raise ValueError(f'"{value}" is not a quantity: exponent out of range')
        factor = Fraction(10) ** power
    result = magnitude * factor
    return -result if sign == "-" else result


def format_quantity(value) -> str:
    """A quantity as the user wrote it (for messages)."""
    return value if isinstance(value, str) else repr(value)
