"""Index rows to the DICOM JSON Model (PS3.18 Annex F.2).

Each attribute is ``"GGGGEEEE": {"vr": VR, "Value": [...]}``; an attribute
without a value keeps its VR and has no ``Value`` (PS3.18 F.2.5). Person names
are objects with one member per component group (F.2.2); IS values are JSON
numbers (F.2.3).
"""

import datetime
import functools
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

from pacs.models import Study

JsonValue = str | int | float | dict[str, str]
DicomJson = dict[str, dict[str, Any]]

PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")

# The dictionary VR of a tag or keyword. pydicom looks it up afresh on each
# call; a page of 100 studies asked for it thousands of times.
dictionary_vr = functools.cache(dictionary_VR)


def attribute(keyword: str, values: list[JsonValue]) -> tuple[str, dict[str, Any]]:
    """One attribute of the DICOM JSON Model (PS3.18 F.2.2).

    Parameters
    ----------
    keyword : str
        The PS3.6 keyword; its tag and VR come from pydicom's dictionary.
    values : list
        The values, already in their JSON form; empty for a zero-length value.

    Returns
    -------
    tuple of (str, dict)
        The tag as eight upper-case hex digits, and the attribute object.
    """
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    element: dict[str, Any] = {"vr": dictionary_vr(keyword)}
    if values:
        element["Value"] = values
    return f"{tag:08X}", element


def person_name_value(stored: str) -> list[JsonValue]:
    """A PN value in the JSON form of PS3.18 F.2.2 (groups split at ``=``).

    Trailing empty components are dropped (PS3.5 6.2), so ``^^^^`` is no
    value at all.
    """
    groups = [group.rstrip("^") for group in stored.split("=")]
    name = {label: group for label, group in zip(PN_GROUPS, groups, strict=False)}
    name = {label: group for label, group in name.items() if group}
    return [name] if name else []


def date_value(value: datetime.date | None) -> list[JsonValue]:
    """A DA value, YYYYMMDD (PS3.5 Table 6.2-1)."""
    return [value.strftime("%Y%m%d")] if value else []


def time_value(value: datetime.time | None) -> list[JsonValue]:
    """A TM value, HHMMSS with the fraction only when there is one."""
    if value is None:
        return []
    text = value.strftime("%H%M%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return [text]


def text_value(value: str) -> list[JsonValue]:
    return [value] if value else []


def study_attributes(study: Study, retrieve_url: str) -> DicomJson:
    """The Study level attributes a Search for Studies returns (PS3.18 10.6.3).

    These are the default return attributes of PS3.18 Table 10.6.3-3 that
    Nimbus indexes; the patient must have been loaded with the study
    (``select_related("patient")``).

    Parameters
    ----------
    study : Study
        The matching study.
    retrieve_url : str
        The absolute WADO-RS URL of the study (Retrieve URL, 0008,1190).

    Returns
    -------
    dict
        The DICOM JSON object, attributes in ascending tag order.
    """
    patient = study.patient
    attributes = dict(
        [
            attribute("StudyDate", date_value(study.study_date)),
            attribute("StudyTime", time_value(study.study_time)),
            attribute("AccessionNumber", text_value(study.accession_number)),
            attribute("InstanceAvailability", ["ONLINE"]),
            attribute("ModalitiesInStudy", list(study.modality_list)),
            attribute(
                "ReferringPhysicianName",
                person_name_value(study.referring_physician_name),
            ),
            attribute("RetrieveURL", [retrieve_url]),
            attribute("PatientName", person_name_value(patient.patient_name)),
            attribute("PatientID", text_value(patient.patient_id)),
            attribute("PatientBirthDate", date_value(patient.patient_birth_date)),
            attribute("PatientSex", text_value(patient.patient_sex)),
            attribute("StudyDescription", text_value(study.study_description)),
            attribute("StudyInstanceUID", [study.study_instance_uid]),
            attribute("StudyID", text_value(study.study_id)),
            attribute(
                "NumberOfStudyRelatedSeries",
                [study.number_of_study_related_series],
            ),
            attribute(
                "NumberOfStudyRelatedInstances",
                [study.number_of_study_related_instances],
            ),
        ]
    )
    return dict(sorted(attributes.items()))


def tidy_answer(encoded: DicomJson, retrieve_url: str | None = None) -> DicomJson:
    """Finish a query answer: person names tidied, Retrieve URL, tags in order.

    Person names lose their trailing empty components, as ``person_name_value``
    writes them; ``retrieve_url`` fills Retrieve URL (0008,1190).
    """
    for name, element in encoded.items():
        if element.get("vr") == "PN" and "Value" in element:
            element = encoded[name] = dict(element)  # stored headers stay as read
            names = [
                value
                for name_value in element["Value"]
                for value in person_name_value(
                    "=".join(name_value.get(group, "") for group in PN_GROUPS)
                )
            ]
            if names:
                element["Value"] = names
            else:
                del element["Value"]
    if retrieve_url is not None:
        encoded.update([attribute("RetrieveURL", [retrieve_url])])
    return dict(sorted(encoded.items()))
