from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from pacs.models import RemoteApplicationEntity


def create_remote_ae(*args: str) -> str:
    out = StringIO()
    call_command("create_remote_ae", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_creates_then_updates_a_remote_ae_without_duplicating_it(tenant_a):
    first = create_remote_ae(
        "--tenant", "hospital_a", "--ae-title", "WORKSTATION",
        "--host", "127.0.0.1", "--port", "11113", "--may-retrieve",
    )  # fmt: skip
    second = create_remote_ae(
        "--tenant", "hospital_a", "--ae-title", "WORKSTATION",
        "--host", "127.0.0.1", "--port", "11114", "--may-store",
    )  # fmt: skip

    assert first.startswith("Created remote AE WORKSTATION")
    assert second.startswith("Updated remote AE WORKSTATION")
    remote = RemoteApplicationEntity.objects.get()
    assert (remote.port, remote.may_store, remote.may_retrieve) == (11114, True, False)


@pytest.mark.django_db
def test_it_refuses_an_invalid_ae_title_and_an_unknown_tenant(tenant_a):
    with pytest.raises(CommandError):
        create_remote_ae(
            "--tenant", "hospital_a", "--ae-title", "BAD\\TITLE",
            "--host", "127.0.0.1", "--port", "104",
        )  # fmt: skip
    with pytest.raises(CommandError):
        create_remote_ae(
            "--tenant", "nowhere", "--ae-title", "OK",
            "--host", "127.0.0.1", "--port", "104",
        )  # fmt: skip

    assert not RemoteApplicationEntity.objects.exists()
