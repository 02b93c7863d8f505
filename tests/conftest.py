"""Shared fixtures: where ../shared/testdata is, skipping cleanly when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = REPO.parent / "shared" / "testdata"


@pytest.fixture(scope="session")
def shared_testdata() -> Path:
    """The real tokenizers and the stories260K model beside the checkout (../shared/testdata)."""
    if not SHARED_TESTDATA.is_dir():
        pytest.skip("../shared/testdata not present")
    return SHARED_TESTDATA


def pytest_collection_modifyitems(items):
    # Tests that use shared_testdata carry the shared_data marker, so `-m "not shared_data"` works.
    for item in items:
        if "shared_testdata" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)
