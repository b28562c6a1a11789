"""Viewer fixtures: real files ingested the way the listener does it."""

import uuid
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from pacs.models import Instance

IngestFile = Callable[[Path], Instance]


@pytest.fixture(autouse=True)
def private_cache(settings) -> None:  # type: ignore[no-untyped-def]
    """A key prefix of its own per test: Redis is shared with other test runs."""
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        }
    }


@pytest.fixture
def ingest(tenant_a, storage_dirs) -> IngestFile:  # type: ignore[no-untyped-def]
    """Spool a copy of a file, ingest it in hospital A, return its Instance."""

    def ingest_file(source: Path) -> Instance:
        spooled = spool.write_durably(tenant_a.schema_name, source.read_bytes())
        result = do_ingest_spooled_file(spooled, "MODALITY")
        assert result is not None, f"{source.name} was quarantined"
        sop_uid = pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID
        return Instance.objects.select_related("series__study__patient").get(
            sop_instance_uid=sop_uid
        )

    return ingest_file
