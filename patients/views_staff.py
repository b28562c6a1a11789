"""The radiologist's page of a study's patient links: make one, revoke one.

Radiologists make links: they read the signed report and know the patient's
study. Hospital IT (tenant_admin) sees no patient data, so it does not.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import Role
from pacs.access import denied, get_study_for_user
from pacs.models import Study
from patients import actions, selectors
from patients.forms import PatientLinkForm


def _study_for_radiologist(request: HttpRequest, study_uid: str) -> Study:
    if getattr(request.user, "role", None) != Role.RADIOLOGIST:
        raise denied(request.user, "study", study_uid, _("No such study."))  # type: ignore[arg-type]
    return get_study_for_user(request.user, study_uid)  # type: ignore[arg-type]


@login_required
def study_links(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = _study_for_radiologist(request, study_uid)
    signed = selectors.has_signed_report(study)
    form = PatientLinkForm(
        request.POST or None, initial={"days": selectors.default_link_days()}
    )
    new_link_url = ""
    if request.method == "POST" and signed and form.is_valid():
        _, raw = actions.do_create_patient_link(
            request,
            request.user,  # type: ignore[arg-type]
            study,
            form.cleaned_data["email"],
            form.cleaned_data["days"],
        )
        # Shown this once: only the token's hash is kept.
        new_link_url = request.build_absolute_uri(reverse("patients:link", args=[raw]))
        form = PatientLinkForm(initial={"days": selectors.default_link_days()})
    now = timezone.now()
    return render(
        request,
        "patients/staff_links.html",
        {
            "study": study,
            "signed": signed,
            "form": form,
            "new_link_url": new_link_url,
            "links": [
                {"link": link, "state": link.state(now)}
                for link in selectors.links_of(study)
            ],
        },
    )


@login_required
@require_POST
def revoke_link(request: HttpRequest, study_uid: str, link_id: int) -> HttpResponse:
    study = _study_for_radiologist(request, study_uid)
    if actions.do_revoke_patient_link(request, request.user, link_id, study):  # type: ignore[arg-type]
        messages.success(request, _("The link was revoked."))
    return redirect("patients:study_links", study_uid)
