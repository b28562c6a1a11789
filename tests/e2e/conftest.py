from collections.abc import Iterator

import pytest

from tests.support.ris import RisListener
from tests.support.stack import Stack, running_stack


@pytest.fixture(scope="session")
def ris() -> Iterator[RisListener]:
    server = RisListener().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, ris: RisListener
) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack"), ris.port) as running:
        yield running
