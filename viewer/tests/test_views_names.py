from django.urls import reverse

from pacs.dicom import display_person_name
from viewer.tests.test_views import ct_study  # noqa: F401 (fixture)


def test_the_viewer_writes_the_patients_name_as_every_page_does(client_a, ct_study):  # noqa: F811
    ct_study.patient.patient_name = "Dubois^Amélie^^Dr"
    ct_study.patient.save()

    page = client_a.get(reverse("viewer:study", args=[ct_study.study_instance_uid]))

    assert display_person_name("Dubois^Amélie^^Dr") == "Dubois, Dr Amélie"
    assert (
        '<div id="overlay-patient-name">Dubois, Dr Amélie</div>'
        in page.content.decode()
    )
