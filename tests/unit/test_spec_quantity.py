"""The Kubernetes quantity grammar."""

from fractions import Fraction

import pytest

from minipod.spec import parse_quantity


@pytest.mark.parametrize("text, value", [
    ("1", 1),
    ("0", 0),
    ("1.5", Fraction(3, 2)),
    (".5", Fraction(1, 2)),
    ("1.", 1),
    ("+2", 2),
    ("-2", -2),
    ("500m", Fraction(1, 2)),
    ("100m", Fraction(1, 10)),
    ("1k", 1000),
    ("1M", 10**6),
    ("1G", 10**9),
    ("2T", 2 * 10**12),
    ("1P", 10**15),
    ("1E", 10**18),  # "E" alone is exa, not an exponent
    ("1Ki", 1024),
    ("128Mi", 128 * 2**20),
    ("1.5Gi", 3 * 2**29),
    ("1Ti", 2**40),
    ("1Pi", 2**50),
    ("1Ei", 2**60),
    ("1e3", 1000),
    ("1E3", 1000),
    ("1e-3", Fraction(1, 1000)),
    ("1.5e+2", 150),
    ("12e0", 12),
])
def test_valid_quantities(text, value):
    assert parse_quantity(text) == value


def test_values_are_exact():
    assert parse_quantity("0.1") * 3 == Fraction(3, 10)
    assert isinstance(parse_quantity("500m"), Fraction)


def test_yaml_numbers_are_quantities():
    assert parse_quantity(2) == 2
    assert parse_quantity(0.5) == Fraction(1, 2)
    assert parse_quantity(0.1) == Fraction(1, 10)


@pytest.mark.parametrize("bad", [
    "", " 1", "1 ", "x", "1KB", "1kb", "1mi", "1.2.3", "e3", "1e", "1e1.5", "--1", "1_000", "0x10",
    "1Mi1", "m", ".", "1e1000", True, None, [1], float("inf"), float("nan"),
])
def test_invalid_quantities_raise_value_error(bad):
    with pytest.raises(ValueError):
        parse_quantity(bad)
