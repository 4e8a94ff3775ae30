"""The snapshot format's constants, which the worker's encoder and the parent's check must agree on.

The format itself is described in :mod:`sandbox.worker.snapshot` (which writes and reads
it); :mod:`sandbox.snapshot_check` refuses, in the parent, anything that is not exactly
what that encoder writes. Both take the tags, the factories a ``defaultdict`` may name,
the float spellings and the size bounds from here, so a bound raised on one side is
raised on the other.
"""

from __future__ import annotations

import math
from typing import Final

MAX_VARIABLES: Final = 1000
MAX_NODES: Final = 250_000
"""Values in one snapshot at most: a bound on the time it takes, on either side of the channel."""
MAX_INT_BITS: Final = 10_000
"""Larger ints are skipped: their decimal form is past what ``json`` converts (4,300 digits by default)."""
MAX_REASON_CHARS: Final = 300
"""Longest reason given for a variable that was not saved."""
FACTORY_NAMES: Final = ("int", "float", "str", "list", "dict", "set", "tuple", "Counter")
"""The ``default_factory`` of a ``defaultdict`` that can be saved: plain types, by name."""
FLOATS: Final = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
"""Floats JSON has no spelling for, by the name a node gives them."""
TAGS: Final = frozenset({"n", "b", "i", "f", "s", "y", "l", "t", "S", "F", "d", "O", "C", "D", "q"})
"""The first item of every node: what kind of value it holds."""
