"""A tenant's own language model: the base corpus, its signed reports and macros.

Each hospital names things its own way; its signed reports teach the model
those words and phrasings. Only signed text is used: a draft may still hold
misrecognitions, and training on them would make them likelier.
"""

import logging
import time

from django_tenants.utils import schema_context

from reporting.models import Report, ReportMacro, ReportStatus
from reporting.speech import language_model
from reporting.speech.commands import macro_phrase

logger = logging.getLogger(__name__)


def do_rebuild_tenant_model(
    schema: str, language: str = "en"
) -> language_model.ModelBuild:
    started = time.monotonic()
    with schema_context(schema):
        signed = list(
            Report.objects.filter(status=ReportStatus.SIGNED)
            .order_by("pk")
            .values_list("text", flat=True)
        )
        # So that "macro <name>" is heard for each of the tenant's macros.
        macros = [
            macro_phrase(name, language)
            for name in ReportMacro.objects.order_by("name").values_list(
                "name", flat=True
            )
        ]
    base = language_model.base_corpus_path(language).read_text(encoding="utf-8")
    build = language_model.build_model(
        [base, *signed, "\n".join(macros)],
        language_model.tenant_model_dir(schema, language),
        language,
        skip_unknown=True,
    )
    logger.info(
        "Language model of tenant %s rebuilt from %d signed reports in %d ms",
        schema,
        len(signed),
        int((time.monotonic() - started) * 1000),
    )
    return build
