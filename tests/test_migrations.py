"""Every model change has its migration: a change without one would be lost
on the next deployment, or made there by someone else's makemigrations."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration():
    out = StringIO()
    try:
        call_command("makemigrations", check=True, dry_run=True, stdout=out)
    except SystemExit as missing:
        pytest.fail(f"migrations missing (exit {missing.code}):\n{out.getvalue()}")
