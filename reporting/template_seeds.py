"""Normal-findings report templates in English, French, German and Dutch.

A starting set a tenant loads once (``manage.py seed_report_templates``) and
then edits in the admin. The text is the tenant's from then on: it is data,
not a translated message, so it is written here in each language rather than
put through gettext.
"""

from dataclasses import dataclass

from django.db import transaction
from django_tenants.utils import schema_context

from reporting.models import ReportTemplate


@dataclass(frozen=True)
class Seed:
    name: str
    technique: str
    findings: str
    impression: str


# (modality, body part) -> language -> the template.
SEEDS: dict[tuple[str, str], dict[str, Seed]] = {
    ("DX", "CHEST"): {
        "en": Seed(
            "Normal chest radiograph",
            "PA and lateral views of the chest.",
            "The lungs are clear. No focal consolidation, pleural effusion or "
            "pneumothorax. The cardiomediastinal silhouette is within normal "
            "limits. The visualised bones are unremarkable.",
            "No acute cardiopulmonary abnormality.",
        ),
        "fr": Seed(
            "Radiographie thoracique normale",
            "Radiographie thoracique de face et de profil.",
            "Parenchyme pulmonaire sans anomalie. Pas de foyer de condensation, "
            "d'épanchement pleural ni de pneumothorax. Silhouette "
            "cardio-médiastinale dans les limites de la normale. Cadre osseux "
            "visible sans particularité.",
            "Pas d'anomalie cardio-pulmonaire aiguë.",
        ),
        "de": Seed(
            "Röntgen Thorax, Normalbefund",
            "Röntgen Thorax in zwei Ebenen (p.a. und seitlich).",
            "Lunge beidseits regelrecht belüftet. Kein Infiltrat, kein "
            "Pleuraerguss, kein Pneumothorax. Herz und Mediastinum normal "
            "konfiguriert. Miterfasste knöcherne Strukturen unauffällig.",
            "Kein Nachweis einer akuten kardiopulmonalen Pathologie.",
        ),
        "nl": Seed(
            "Normale thoraxfoto",
            "Thoraxfoto PA en lateraal.",
            "Heldere longvelden. Geen consolidatie, pleuravocht of pneumothorax. "
            "Normale cor-mediastinale contour. Afgebeelde skeletdelen zonder "
            "bijzonderheden.",
            "Geen acute cardiopulmonale afwijkingen.",
        ),
    },
    ("CT", "HEAD"): {
        "en": Seed(
            "Normal CT head",
            "Non-contrast CT of the head.",
            "No intracranial haemorrhage, mass effect or midline shift. "
            "Grey-white matter differentiation is preserved. The ventricles and "
            "sulci are normal in size for age. The basal cisterns are patent. "
            "No skull fracture.",
            "No acute intracranial abnormality.",
        ),
        "fr": Seed(
            "Scanner cérébral normal",
            "Scanner cérébral sans injection de produit de contraste.",
            "Pas d'hémorragie intracrânienne, d'effet de masse ni de déviation "
            "de la ligne médiane. Différenciation substance grise-substance "
            "blanche conservée. Système ventriculaire et sillons de taille "
            "normale pour l'âge. Citernes de la base libres. Pas de fracture "
            "de la voûte.",
            "Pas d'anomalie intracrânienne aiguë.",
        ),
        "de": Seed(
            "CT Schädel, Normalbefund",
            "CT des Schädels nativ.",
            "Keine intrakranielle Blutung, keine Raumforderung, keine "
            "Mittellinienverlagerung. Mark-Rinden-Differenzierung erhalten. "
            "Altersentsprechend normal weite innere und äußere Liquorräume. "
            "Basale Zisternen frei. Keine Kalottenfraktur.",
            "Kein Nachweis einer akuten intrakraniellen Pathologie.",
        ),
        "nl": Seed(
            "Normale CT-hersenen",
            "CT-hersenen zonder contrast.",
            "Geen intracraniële bloeding, massawerking of midline shift. "
            "Grijze-wittestofdifferentiatie behouden. Ventrikels en sulci van "
            "normale wijdte voor de leeftijd. Basale cisternen vrij. Geen "
            "schedelfractuur.",
            "Geen acute intracraniële afwijkingen.",
        ),
    },
}


def do_seed_report_templates(schema: str, languages: list[str]) -> int:
    """Add the normal-findings templates in ``languages`` that the tenant lacks.

    A template the tenant already has (same name and language) is left as the
    tenant edited it. Returns how many were added.
    """
    added = 0
    with schema_context(schema), transaction.atomic():
        for (modality, body_part), by_language in SEEDS.items():
            for language in languages:
                seed = by_language[language]
                _template, created = ReportTemplate.objects.get_or_create(
                    name=seed.name,
                    language=language,
                    defaults={
                        "modality": modality,
                        "body_part": body_part,
                        "technique": seed.technique,
                        "findings": seed.findings,
                        "impression": seed.impression,
                    },
                )
                added += created
    return added
