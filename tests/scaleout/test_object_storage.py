"""The archive on a real S3 server (SeaweedFS on loopback) through django-storages."""

from pathlib import Path

import pydicom
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage

from config.storage import storage_setting
from conftest import CT_SERIES
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from pacs.models import Instance
from pacs.storage_backends import ReadCache
from viewer.rendering import render_png


def ingest(source: Path) -> Instance:
    do_ingest_spooled_file(spool.write_durably("hospital_a", source.read_bytes()))
    return Instance.objects.get(sop_instance_uid=pydicom.dcmread(source).SOPInstanceUID)


@pytest.mark.django_db
def test_ingest_stores_the_file_in_the_bucket_under_the_tenant_prefix(
    tenant_a, s3_storage, s3_server
):
    source = CT_SERIES / "1-030.dcm"

    instance = ingest(source)

    prefix = f"t-{s3_storage.name}/"
    key = prefix + instance.storage_path
    assert instance.storage_path.startswith("hospital_a/")
    assert s3_server.keys(prefix) == [key]
    body = s3_server.client().get_object(Bucket=s3_server.bucket, Key=key)["Body"]
    assert body.read() == source.read_bytes()
    assert not (s3_storage / "storage").exists()  # nothing in a local archive


@pytest.mark.django_db
def test_reads_come_from_the_local_cache_once_fetched(tenant_a, s3_storage, s3_server):
    source = CT_SERIES / "1-031.dcm"
    instance = ingest(source)
    with default_storage.open(instance.storage_path, "rb") as handle:
        assert handle.read() == source.read_bytes()
    cached = s3_storage / "cache" / instance.storage_path
    assert cached.read_bytes() == source.read_bytes()

    # Gone from the bucket behind the archive's back: the cached copy serves.
    s3_server.client().delete_object(
        Bucket=s3_server.bucket, Key=f"t-{s3_storage.name}/{instance.storage_path}"
    )

    with default_storage.open(instance.storage_path, "rb") as handle:
        assert handle.read() == source.read_bytes()


@pytest.mark.django_db
def test_the_viewer_renders_an_instance_stored_in_the_bucket(tenant_a, s3_storage):
    instance = ingest(CT_SERIES / "1-032.dcm")

    png = render_png(instance)

    assert png.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.django_db
def test_a_missing_object_is_file_not_found(tenant_a, s3_storage):
    with pytest.raises(FileNotFoundError):
        default_storage.open("hospital_a/1.2.3/1.2.4/1.2.5.dcm", "rb")


@pytest.mark.django_db
def test_a_wrong_secret_key_is_refused_by_the_server(
    tenant_a, s3_storage, s3_server, settings
):
    options = {**settings.STORAGES["default"]["OPTIONS"], "secret_key": "wrong"}
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**settings.STORAGES["default"], "OPTIONS": options},
    }

    with pytest.raises(Exception, match="SignatureDoesNotMatch|403|Forbidden"):
        default_storage.save("hospital_a/x.dcm", open(CT_SERIES / "1-030.dcm", "rb"))


def test_the_cache_stays_near_its_bound_and_keeps_the_recent_files(tmp_path):
    cache = ReadCache(tmp_path / "cache", max_bytes=100_000)

    def fetch(path: Path) -> None:
        path.write_bytes(b"x" * 10_000)

    for number in range(40):
        cache.get(f"s/{number}.dcm", fetch)
    cache.trim()

    files = list((tmp_path / "cache").rglob("*.dcm"))
    assert sum(f.stat().st_size for f in files) <= 100_000
    assert (tmp_path / "cache" / "s" / "39.dcm").exists()
    assert not (tmp_path / "cache" / "s" / "0.dcm").exists()


def test_the_cache_refuses_a_name_outside_its_folder(tmp_path):
    cache = ReadCache(tmp_path / "cache", max_bytes=1000)

    with pytest.raises(Exception, match="outside"):
        cache.get("../escape.dcm", lambda path: path.write_bytes(b"x"))


def test_plain_http_is_refused_for_a_server_on_another_machine(monkeypatch, tmp_path):
    monkeypatch.setenv("NIMBUS_S3_ENDPOINT_URL", "http://s3.example.org:8333")

    with pytest.raises(ImproperlyConfigured, match="plain http"):
        storage_setting("s3://archive", tmp_path)


def test_plain_http_on_a_network_declared_private_is_allowed(monkeypatch, tmp_path):
    # A compose network on one host (deploy/docker-compose.yml).
    monkeypatch.setenv("NIMBUS_S3_ENDPOINT_URL", "http://seaweedfs:8333")
    monkeypatch.setenv("NIMBUS_S3_PLAIN_HTTP_NETWORK", "true")

    options = storage_setting("s3://archive", tmp_path)["OPTIONS"]

    assert options["endpoint_url"] == "http://seaweedfs:8333"


def test_https_verifies_against_the_system_cas_or_the_given_bundle(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("NIMBUS_S3_ENDPOINT_URL", "https://s3.example.org")
    assert storage_setting("s3://archive/p", tmp_path)["OPTIONS"]["verify"] is True

    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("NIMBUS_S3_CA_BUNDLE", str(bundle))
    options = storage_setting("s3://archive/p", tmp_path)["OPTIONS"]
    assert options["verify"] == str(bundle)
    assert options["bucket_name"] == "archive" and options["location"] == "p"

    monkeypatch.setenv("NIMBUS_S3_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(ImproperlyConfigured, match="NIMBUS_S3_CA_BUNDLE"):
        storage_setting("s3://archive", tmp_path)


def test_one_key_without_the_other_stops_start_up(monkeypatch, tmp_path):
    monkeypatch.setenv("NIMBUS_S3_ACCESS_KEY_ID", "only-the-id")

    with pytest.raises(ImproperlyConfigured, match="both or neither"):
        storage_setting("s3://archive", tmp_path)


def test_a_folder_stays_a_local_archive(tmp_path):
    setting = storage_setting(str(tmp_path / "archive"), tmp_path)

    assert setting["BACKEND"].endswith("FileSystemStorage")
