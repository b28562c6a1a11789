from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from pacs.access import get_study_for_user


@login_required
def study_viewer(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    return HttpResponse(study.study_instance_uid)
