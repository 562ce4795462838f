"""Fixtures for the chart tests (helpers live in charttools.py)."""

from __future__ import annotations

import helm_python
import pytest
from charttools import CHART


@pytest.fixture(scope="session")
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART)
