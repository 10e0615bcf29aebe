"""What the fuzz modules (`tests/test_fuzz_*.py`) share; this module holds no tests.

CI runs each property with a small, seeded number of examples (a few seconds). The nightly run
sets `RECONCILER_FUZZ_EXAMPLES` (e.g. 10000) and runs the same properties that many times each:

    RECONCILER_FUZZ_EXAMPLES=10000 .venv/bin/pytest tests/test_fuzz_*.py -p no:randomly
"""

from __future__ import annotations

import os
import re
from typing import Any, Final

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Examples per property: CI's default, or the nightly number from the environment.
NIGHTLY: Final = os.environ.get("RECONCILER_FUZZ_EXAMPLES")


def examples(ci: int) -> int:
    return int(NIGHTLY) if NIGHTLY else ci


def fuzz_settings(ci: int) -> settings:
    """Seeded (derandomized) in CI, so a failure reproduces; random and long at night."""
    return settings(
        max_examples=examples(ci),
        deadline=None,
        derandomize=not NIGHTLY,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )


#: A problem line: `file:line:col: message` (the position every user-input error carries).
PROBLEM: Final = re.compile(r"^[^\n]+?:\d+:\d+: \S[^\n]*$")

#: JSON values, the odd ones included (huge and non-finite numbers, deep nesting, unicode).
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["", "@TOA#_news", "alice", "sha256:00", "createAccount", "name", "é\x00"])
    | st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e300, -1, 0, 2**64]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
