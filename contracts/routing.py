"""Which variant of an A/B test answers a unit: the rule the service routes by, written once.

A unit (a customer, an account: whatever the caller names in the pin's `ab.unit` header or
field) is hashed into one of 10,000 buckets: the first 8 bytes of
sha256("<test>" + "\\x1f" + "<unit id>") as a big-endian integer, modulo 10,000, where `<test>`
names the test (`<model>/<version a>/<version b>`). Variant `a` answers buckets
[0, 100 x split[a]), variant `b` the rest. So:

- the same unit always gets the same variant, in every replica and after every restart (no
  state, no process-seeded `hash()`);
- a new test (another pair of versions) reshuffles the units, so the same customers are not
  always the ones trying new versions;
- raising b's share in a later pin of the same test only moves units from a to b, never back.

A request without a unit id gets a variant drawn at random with the split's odds.
"""
from __future__ import annotations

import hashlib
import random

from contracts.pin import Pin

BUCKETS = 10_000
# The longest unit id routed by its hash; a longer one is refused rather than truncated, so two
# different ids can never share a bucket because of a cut.
MAX_UNIT_CHARS = 256
_SEPARATOR = "\x1f"


def experiment(pin: Pin) -> str:
    """The name of the pin's A/B test, `<model>/<version a>/<version b>` (the hash's salt)."""
    b = pin.variant("b")  # raises for a pin without a test
    return f"{pin.model.name}/{pin.model.version}/{b.version}"


def unit_text(value: object) -> str | None:
    """A unit id as routed: a string as it is (surrounding blanks dropped), an integer as its
    decimal digits; None when there is none (absent, null or blank). Anything else (a float,
    a boolean, a list) is refused: `42.0` and `42` must not silently be two customers."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"a unit id must be a string or an integer, got {type(value).__name__}")
    text = str(value).strip()
    if len(text) > MAX_UNIT_CHARS:
        raise ValueError(f"a unit id has at most {MAX_UNIT_CHARS} characters, got {len(text)}")
    return text or None


def bucket(unit: str, experiment: str) -> int:
    """The unit's bucket in `experiment` (see `experiment()`), 0 to 9,999."""
    digest = hashlib.sha256(f"{experiment}{_SEPARATOR}{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def variant(pin: Pin, unit: str | None, rng: random.Random | None = None) -> str:
    """The variant (`a` or `b`) that answers `unit` (a `unit_text`) under the pin's A/B test;
    without a unit, one drawn from `rng` (default: the process's random source)."""
    share_a = pin.ab.split["a"] * BUCKETS // 100
    if unit is None:
        draw = (rng or random).randrange(BUCKETS)
    else:
        draw = bucket(unit, experiment(pin))
    return "a" if draw < share_a else "b"
