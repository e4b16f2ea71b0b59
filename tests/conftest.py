"""Every async test runs on both anyio backends (modules set ``pytestmark = pytest.mark.anyio``)."""

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return request.param
