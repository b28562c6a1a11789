"""The French, German and Dutch catalogues: complete, compiled and served.

The .po files are parsed here rather than with polib (not a dependency), and
the committed .mo files are read with the standard library, so a catalogue
that was edited but not recompiled fails as well as one left half-done.

Checking the .po files alone cannot see a string that was marked for
translation after the last makemessages run: it is simply not there. So the
messages are also extracted from a copy of the code with the project's own
command (``makemessages -d django --ignore=.venv --ignore=var
--ignore=node_modules --ignore=tests --ignore=static``, GNU gettext's
xgettext underneath) and compared with each catalogue.
"""

import ast
import contextlib
import gettext
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from django.utils import translation

from conftest import tenant_client

LOCALE_DIR = Path(settings.LOCALE_PATHS[0])
TRANSLATED = [code for code, _name in settings.LANGUAGES if code != "en"]
PLURAL_FORMS = {
    "fr": "nplurals=2; plural=(n > 1);",
    "de": "nplurals=2; plural=(n != 1);",
    "nl": "nplurals=2; plural=(n != 1);",
}
# The --ignore patterns of the makemessages run that refreshes the catalogues.
MAKEMESSAGES_IGNORE = [".venv", "var", "node_modules", "tests", "static"]
# What makemessages reads for the "django" domain.
SOURCE_SUFFIXES = {".py", ".html", ".txt"}
# Python's %(name)s and str.format's {name}; both must survive translation.
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w*\}")


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        """The key gettext uses in a .mo: the context, EOT, then the msgid."""
        return self.msgid if self.msgctxt is None else f"{self.msgctxt}\x04{self.msgid}"


def parse_po(path: Path) -> tuple[Entry, list[Entry]]:
    """The header entry and the live messages of a .po (obsolete ones skipped)."""
    entries: list[Entry] = []
    entry, current = Entry(), ""

    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        line = line.strip()
        if not line:
            if current:
                entries.append(entry)
            entry, current = Entry(), ""
        elif line.startswith("#,"):
            entry.flags.update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            append(entry, current, ast.literal_eval(line))
        else:
            keyword, _space, literal = line.partition(" ")
            current = keyword
            append(entry, current, ast.literal_eval(literal))

    header = next(e for e in entries if e.msgid == "" and e.msgctxt is None)
    return header, [e for e in entries if e is not header]


def append(entry: Entry, keyword: str, text: str) -> None:
    if keyword == "msgid":
        entry.msgid += text
    elif keyword == "msgid_plural":
        entry.msgid_plural = (entry.msgid_plural or "") + text
    elif keyword == "msgctxt":
        entry.msgctxt = (entry.msgctxt or "") + text
    else:
        index = int(keyword[7:-1]) if keyword.startswith("msgstr[") else 0
        entry.msgstr[index] = entry.msgstr.get(index, "") + text


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "django.po"


def load_mo(language: str) -> gettext.GNUTranslations:
    with (LOCALE_DIR / language / "LC_MESSAGES" / "django.mo").open("rb") as mo:
        return gettext.GNUTranslations(mo)


def message_keys(entries: list[Entry]) -> set[tuple[str | None, str, str | None]]:
    return {(e.msgctxt, e.msgid, e.msgid_plural) for e in entries}


def describe(keys: set[tuple[str | None, str, str | None]]) -> list[str]:
    return sorted(
        (f"[{ctx}] " if ctx is not None else "") + msgid for ctx, msgid, _p in keys
    )


def copy_sources(root: Path, target: Path) -> None:
    """The files makemessages would read, without .venv, var, locale, ... ."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            name
            for name in dirnames
            if name not in MAKEMESSAGES_IGNORE
            and name not in {"locale", "__pycache__"}
            and not name.startswith(".")
        ]
        for name in filenames:
            if Path(name).suffix in SOURCE_SUFFIXES:
                source = Path(dirpath, name)
                copy = target / source.relative_to(root)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, copy)


@pytest.fixture(scope="module")
def messages_in_the_code(
    tmp_path_factory: pytest.TempPathFactory,
) -> set[tuple[str | None, str, str | None]]:
    """The messages makemessages extracts from the code today, as a .pot.

    It runs on a copy, so neither the committed catalogues nor the source
    tree (makemessages writes .html.py files next to templates) are touched.
    """
    if shutil.which("xgettext") is None:
        pytest.fail(
            "GNU gettext (xgettext) is needed to compare the catalogues with "
            "the code: apt-get install gettext"
        )
    work = tmp_path_factory.mktemp("makemessages")
    copy_sources(Path(settings.BASE_DIR), work)
    (work / "locale").mkdir()
    with override_settings(LOCALE_PATHS=[work / "locale"]), contextlib.chdir(work):
        call_command(
            "makemessages",
            locale=["fr"],
            domain="django",
            ignore_patterns=MAKEMESSAGES_IGNORE,
            keep_pot=True,
            verbosity=0,
        )
    _header, entries = parse_po(work / "locale" / "django.pot")
    assert entries, "makemessages extracted nothing"
    return message_keys(entries)


def header_fields(header: Entry) -> dict[str, str]:
    lines = header.msgstr[0].strip().splitlines()
    return dict(line.split(": ", 1) for line in lines)


@pytest.mark.parametrize("language", TRANSLATED)
def test_it_has_a_catalogue_and_its_compiled_form_for_each_language(language):
    assert po_path(language).is_file()
    assert po_path(language).with_suffix(".mo").is_file()


def test_it_has_no_catalogue_for_a_language_the_settings_do_not_offer():
    on_disk = {path.parent.parent.name for path in LOCALE_DIR.glob("*/*/django.po")}
    assert on_disk == set(TRANSLATED)


@pytest.mark.parametrize("language", TRANSLATED)
def test_it_declares_language_charset_and_plural_forms(language):
    header, _entries = parse_po(po_path(language))
    fields = header_fields(header)

    assert "fuzzy" not in header.flags
    assert fields["Language"] == language
    assert fields["Content-Type"] == "text/plain; charset=UTF-8"
    assert fields["Plural-Forms"] == PLURAL_FORMS[language]


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_and_none_is_fuzzy(language):
    header, entries = parse_po(po_path(language))
    nplurals = re.search(r"nplurals=(\d+)", header_fields(header)["Plural-Forms"])
    forms = int(nplurals.group(1)) if nplurals else 1

    assert entries, "the catalogue is empty; run makemessages"
    fuzzy = [e.msgid for e in entries if "fuzzy" in e.flags]
    untranslated = [
        e.msgid
        for e in entries
        if not all(e.msgstr.get(n) for n in range(forms if e.msgid_plural else 1))
    ]
    assert fuzzy == []
    assert untranslated == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_catalogue_holds_every_message_of_the_code_and_no_other(
    language, messages_in_the_code
):
    _header, entries = parse_po(po_path(language))
    in_catalogue = message_keys(entries)

    # Marked for translation in code or templates, absent from the .po:
    # makemessages was not run after the string was added or changed.
    assert describe(messages_in_the_code - in_catalogue) == []
    # In the .po but no longer in the code: left over from an old run.
    assert describe(in_catalogue - messages_in_the_code) == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_translation_keeps_the_placeholders_of_its_message(language):
    _header, entries = parse_po(po_path(language))

    changed = []
    for entry in entries:
        for index, text in entry.msgstr.items():
            source = entry.msgid if index == 0 else entry.msgid_plural or entry.msgid
            if sorted(PLACEHOLDER.findall(text)) != sorted(PLACEHOLDER.findall(source)):
                changed.append((entry.msgid, index))
    assert changed == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_compiled_catalogue_holds_exactly_what_the_po_holds(language):
    _header, entries = parse_po(po_path(language))
    # The .mo keeps plural messages under (msgid, index); there is no public
    # listing, so the catalogue dict itself is compared.
    catalog = load_mo(language)._catalog  # type: ignore[attr-defined]

    expected: dict[object, str] = {}
    for entry in entries:
        if entry.msgid_plural is None:
            expected[entry.key] = entry.msgstr[0]
        else:
            expected.update({(entry.key, n): s for n, s in entry.msgstr.items()})
    compiled = {key: text for key, text in catalog.items() if key != ""}
    assert compiled == expected


@pytest.mark.parametrize(
    ("language", "english", "translated"),
    [
        ("fr", "Sign in", "Se connecter"),
        ("de", "Sign in", "Anmelden"),
        ("nl", "Sign in", "Aanmelden"),
        ("fr", "Worklist", "Liste de travail"),
        ("de", "Worklist", "Arbeitsliste"),
        ("nl", "Worklist", "Werklijst"),
        ("fr", "Sign", "Signer"),
        ("de", "Sign", "Freigeben"),
        ("nl", "Sign", "Ondertekenen"),
        ("fr", "accession number", "numéro d'accession"),
        ("de", "accession number", "Auftragsnummer"),
        ("nl", "accession number", "accessienummer"),
    ],
)
def test_it_renders_key_strings_in_the_active_language(language, english, translated):
    with translation.override(language):
        assert translation.gettext(english) == translated


@pytest.mark.parametrize(
    ("language", "one", "none", "many"),
    [
        ("fr", "1 image", "0 image", "3 images"),
        ("de", "1 Bild", "0 Bilder", "3 Bilder"),
        ("nl", "1 beeld", "0 beelden", "3 beelden"),
    ],
)
def test_it_chooses_the_plural_form_each_language_uses(language, one, none, many):
    def images(n: int) -> str:
        text = translation.ngettext("%(counter)s image", "%(counter)s images", n)
        return text % {"counter": n}

    with translation.override(language):
        assert (images(1), images(0), images(3)) == (one, none, many)


@pytest.mark.django_db
def test_the_login_page_speaks_german_to_a_german_browser(tenant_a):
    response = tenant_client(tenant_a).get(
        "/accounts/login/", HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9,en;q=0.5"
    )
    page = response.content.decode()

    assert response.status_code == 200
    assert '<html lang="de">' in page
    assert "Anmelden" in page and "Benutzername" in page and "Einmalpasswort" in page
    assert "Sign in" not in page


@pytest.mark.django_db
def test_the_login_page_stays_english_without_a_language_preference(tenant_a):
    page = tenant_client(tenant_a).get("/accounts/login/").content.decode()

    assert '<html lang="en">' in page
    assert "Sign in" in page
