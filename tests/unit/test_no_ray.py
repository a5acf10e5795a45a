"""The unit suite's guard: nothing here may start Ray."""

from __future__ import annotations

import pytest
import ray

pytestmark = pytest.mark.unit


def test_starting_ray_fails_in_unit_tests() -> None:
    with pytest.raises(RuntimeError, match="must not start Ray"):
        ray.init()
