"""Every new study joins the reading queue; rules route it once images are in;
signing its report ends the claim on it."""

from functools import partial
from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from pacs.models import Study
from reading.actions import do_enqueue_study, do_finish_reading, do_route_study
from reporting.models import ReportStatus, ReportVersion


@receiver(post_save, sender=Study, dispatch_uid="reading.queue_new_study")
def queue_study(
    sender: type[Study],
    instance: Study,
    created: bool,
    raw: bool,
    update_fields: frozenset[str] | None,
    **kwargs: Any,
) -> None:
    if raw:
        return
    if created:
        do_enqueue_study(instance)
    elif not update_fields or "number_of_study_related_series" not in update_fields:
        # Only new series can change what the rules see (modality, body part).
        return
    # After commit: the rules read the series and headers of this transaction,
    # and a failing rule must never undo an ingest (robust: logged, not raised).
    transaction.on_commit(partial(do_route_study, instance.pk), robust=True)


@receiver(post_save, sender=ReportVersion, dispatch_uid="reading.finish_on_signing")
def finish_reading(
    sender: type[ReportVersion],
    instance: ReportVersion,
    created: bool,
    raw: bool,
    **kwargs: Any,
) -> None:
    # Each signature (of the report, or an addendum later) saves one signed
    # version in the signing transaction: the claim ends with it.
    if created and not raw and instance.status == ReportStatus.SIGNED:
        do_finish_reading(instance.report.study)
