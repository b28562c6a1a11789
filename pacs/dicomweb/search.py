"""QIDO-RS search views at the study, series and instance levels (PS3.18 10.6).

Thin views: each authenticates (``dicomweb_endpoint``), negotiates the media
type, parses the parameters, searches what ``pacs.access.studies_for`` lets
the user see, audits and answers in the DICOM JSON Model.
"""

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe
from pydicom.datadict import tag_for_keyword

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType
from pacs.access import studies_for
from pacs.dicomweb.auth import dicomweb_endpoint
from pacs.dicomweb.json_model import DicomJson, tidy_answer
from pacs.dicomweb.qido import QueryError, parse_search, search
from pacs.dicomweb.responses import add_warnings, dicom_json, negotiate, plain_text
from pacs.query import Level, names_case_insensitive

DICOM_JSON = "application/dicom+json"
SEARCH_MEDIA_TYPES = (DICOM_JSON, "application/json")
MORE_RESULTS_WARNING = "There are additional results that can be requested"
AUDITED_OBJECT = {Level.STUDY: "study", Level.SERIES: "series", Level.IMAGE: "instance"}


@require_safe
@dicomweb_endpoint
def search_for_studies(request: HttpRequest, user: User) -> HttpResponse:
    """Search for Studies, ``GET /studies`` (PS3.18 10.6.1, Table 10.6.1-2).

    Status codes: 200 with a DICOM JSON array (PS3.18 F.2); 204 when nothing
    matches (PS3.18 8.3.4.4.1); 400 for a malformed parameter; 401 without
    credentials; 406 when the client accepts no JSON. ``Warning: 299``
    headers name ignored parameters and say when more pages remain.
    """
    return _search(request, user, Level.STUDY, {})


@require_safe
@dicomweb_endpoint
def search_for_series(
    request: HttpRequest, user: User, study_uid: str | None = None
) -> HttpResponse:
    """Search for Series, ``GET [/studies/{study}]/series`` (PS3.18 10.6.1).

    Status codes as for ``search_for_studies``.
    """
    fixed = {"StudyInstanceUID": study_uid} if study_uid else {}
    return _search(request, user, Level.SERIES, fixed)


@require_safe
@dicomweb_endpoint
def search_for_instances(
    request: HttpRequest,
    user: User,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> HttpResponse:
    """Search for Instances (PS3.18 10.6.1), at any of its three paths.

    ``/instances``, ``/studies/{study}/instances`` and
    ``/studies/{study}/series/{series}/instances``; status codes as for
    ``search_for_studies``.
    """
    fixed = {"StudyInstanceUID": study_uid} if study_uid else {}
    if series_uid:
        fixed["SeriesInstanceUID"] = series_uid
    return _search(request, user, Level.IMAGE, fixed)


def _search(
    request: HttpRequest, user: User, level: Level, fixed: dict[str, str]
) -> HttpResponse:
    media_type = negotiate(_accept(request), SEARCH_MEDIA_TYPES)
    if media_type is None:
        return plain_text(
            _("This resource is available as %(types)s only.")
            % {"types": ", ".join(SEARCH_MEDIA_TYPES)},
            status=406,
        )
    try:
        parsed = parse_search(
            request.GET,
            level,
            fixed,
            case_insensitive_names=names_case_insensitive(connection.schema_name),
        )
    except QueryError as error:
        return plain_text(str(error), status=400)

    page = search(studies_for(user), parsed)
    do_record_event(
        EventType.DICOMWEB_QUERY,
        request=request,
        actor=user,
        object_type=AUDITED_OBJECT[level],
        detail={
            "match": parsed.match_keys,
            "offset": parsed.offset,
            "limit": parsed.limit,
            "results": len(page.answers),
        },
    )

    warnings = [*parsed.warnings, *([MORE_RESULTS_WARNING] if page.remaining else [])]
    if not page.answers:
        no_content = HttpResponse(status=204)
        del no_content["Content-Type"]  # RFC 9110 15.3.5: a 204 has no content
        return add_warnings(no_content, warnings)
    base = request.build_absolute_uri(reverse("dicomweb:studies"))
    body = [
        tidy_answer(answer, _retrieve_url(base, level, answer))
        for answer in page.answers
    ]
    return add_warnings(dicom_json(body, media_type), warnings)


def _accept(request: HttpRequest) -> str:
    # PS3.18 8.3.3.1: the "accept" query parameter overrides the header.
    return request.GET.get("accept") or request.headers.get("Accept", "")


def _retrieve_url(studies_url: str, level: Level, answer: DicomJson) -> str:
    """The WADO-RS URL of a match (Retrieve URL, PS3.18 10.6.3.3)."""

    def uid(keyword: str) -> str:
        return str(answer[f"{tag_for_keyword(keyword):08X}"]["Value"][0])

    url = f"{studies_url}/{uid('StudyInstanceUID')}"
    if level in (Level.SERIES, Level.IMAGE):
        url += f"/series/{uid('SeriesInstanceUID')}"
    if level is Level.IMAGE:
        url += f"/instances/{uid('SOPInstanceUID')}"
    return url
