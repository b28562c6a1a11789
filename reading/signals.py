"""Every new study joins the reading queue; rules route it once images are in."""

from functools import partial
from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from pacs.models import Study
from reading.actions import do_enqueue_study, do_route_study


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
