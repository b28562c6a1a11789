from collections.abc import Iterator

import pytest
import redis

from tests.support.stack import REDIS_OWNER_KEY, _claim_redis_database


@pytest.fixture
def own_redis(settings) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A Redis database of this test alone (8-15, as the test stacks claim)."""
    url = _claim_redis_database(settings.REDIS_URL)
    settings.REDIS_URL = url
    yield url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.delete(REDIS_OWNER_KEY)
