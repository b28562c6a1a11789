from django import template

from pacs.dicom import display_person_name

register = template.Library()


@register.filter
def person_name(value: str) -> str:
    """A DICOM PN (Family^Given^Middle^Prefix^Suffix) as people write it."""
    return display_person_name(value)
