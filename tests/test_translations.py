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

Nor can makemessages see a string nobody marked. So the templates (pages,
e-mails, PDFs), the Python code (form and model labels, messages, error
answers) and the JavaScript modules (which take every word from the page)
are read for visible English left unmarked.
"""

import ast
import contextlib
import gettext
import os
import re
import shutil
from dataclasses import dataclass, field
from html.parser import HTMLParser
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


# --- Visible text nobody marked for translation --------------------------------

# A word as people read it: at least two letters, one of them lower case.
# Acronyms (DICOM, PACS, HL7, CT) read the same in the four languages.
WORD = re.compile(r"[^\W\d_]*[a-zà-ÿ][^\W\d_]*")
# Units of the SI read the same too.
SAME_IN_EVERY_LANGUAGE = {"Nimbus", "mm", "cm", "ms"}
# Attributes whose value a person reads (or a screen reader says), and the
# data-label-* attributes that hand translated words to JavaScript modules.
TEXT_ATTRIBUTES = {"title", "placeholder", "alt", "aria-label", "label"}
# Where JavaScript would put words of its own on the page.
JS_VISIBLE_TEXT = re.compile(
    r"(?:\.(?:textContent|innerText|title|placeholder|ariaLabel|alt)\s*\+?=\s*"
    r"|\b(?:alert|confirm|prompt)\(\s*|new\s+Option\(\s*"
    r"|setAttribute\(\s*[\"'](?:title|aria-label|placeholder|alt)[\"']\s*,\s*)"
    r"([\"'`])((?:(?!\1).)*)\1"
)
# Python calls whose text reaches a person: form and model labels, flash
# messages, validation and API errors. OpenAPI descriptions are for
# developers and stay English.
PY_ERRORS = {
    "ValidationError",
    "PermissionDenied",
    "NotFound",
    "ParseError",
    "AuthenticationFailed",
    "NotAuthenticated",
}
PY_TEXT_KEYWORDS = {"label", "help_text", "verbose_name", "verbose_name_plural"}
PY_MESSAGES = {"debug", "info", "success", "warning", "error"}
PY_ANSWER_KEYS = {"detail", "error", "message"}
NOT_USER_CODE = {*MAKEMESSAGES_IGNORE, "locale", "__pycache__", "migrations"}


def readable_words(text: str) -> list[str]:
    return [
        word
        for word in WORD.findall(text)
        if len(word) > 1 and word not in SAME_IN_EVERY_LANGUAGE
    ]


def project_files(suffixes: set[str], root: Path | None = None) -> list[Path]:
    base = root or Path(settings.BASE_DIR)
    found = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [
            name
            for name in dirnames
            if name not in NOT_USER_CODE
            and name != "tests"
            and not name.startswith(".")
        ]
        found += [Path(dirpath, n) for n in filenames if Path(n).suffix in suffixes]
    return sorted(found)


def without_template_code(text: str) -> str:
    """The template with Django's tags, variables and translated blocks blanked."""
    for pattern in (
        r"\{#.*?#\}",
        r"\{%\s*comment\s*%\}.*?\{%\s*endcomment\s*%\}",
        r"\{%\s*blocktrans(?:late)?\b.*?\{%\s*endblocktrans(?:late)?\s*%\}",
        # CSS class names, not words.
        r"\{%\s*block body_class\s*%\}.*?\{%\s*endblock",
        r"\{%.*?%\}",
        r"\{\{.*?\}\}",
    ):
        text = re.sub(pattern, " ", text, flags=re.DOTALL)
    return text


class VisibleText(HTMLParser):
    """Text nodes and readable attributes, outside <script> and <style>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hidden += tag in {"script", "style"}
        for name, value in attrs:
            readable = name in TEXT_ATTRIBUTES or name.startswith("data-label")
            if readable and value and readable_words(value):
                self.found.append(f'{name}="{value.strip()}"')

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in {"script", "style"} and self.hidden > 0

    def handle_data(self, data: str) -> None:
        if not self.hidden and readable_words(data):
            self.found.append(data.strip())


def untranslated_template_text(source: str, suffix: str) -> list[str]:
    text = without_template_code(source)
    if suffix == ".txt":  # e-mails: every line is read
        return [line.strip() for line in text.splitlines() if readable_words(line)]
    parser = VisibleText()
    parser.feed(text)
    return parser.found


def untranslated_js_text(source: str) -> list[str]:
    found = []
    for match in JS_VISIBLE_TEXT.finditer(source):
        literal = re.sub(r"\$\{[^}]*\}", " ", match.group(2))
        if readable_words(literal):
            found.append(match.group(0))
    return found


def _is_prose(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and bool(readable_words(node.value))
    )


def _call_name(func: ast.expr) -> tuple[str, str]:
    if isinstance(func, ast.Name):
        return func.id, ""
    if isinstance(func, ast.Attribute):
        base = func.value.id if isinstance(func.value, ast.Name) else ""
        return func.attr, base
    return "", ""


def untranslated_python_text(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name, base = _call_name(node.func)
        args = node.args
        texts = []
        if name in PY_ERRORS and args:
            texts.append(args[0])
        if base == "messages" and name in PY_MESSAGES and len(args) > 1:
            texts.append(args[1])
        if base != "serializers" and not name.endswith("Serializer"):
            texts += [k.value for k in node.keywords if k.arg in PY_TEXT_KEYWORDS]
        if (
            name in {"JsonResponse", "Response"}
            and args
            and isinstance(args[0], ast.Dict)
        ):
            texts += [
                value
                for key, value in zip(args[0].keys, args[0].values, strict=True)
                if isinstance(key, ast.Constant) and key.value in PY_ANSWER_KEYS
            ]
        found += [f"line {n.lineno}: {n.value!r}" for n in texts if _is_prose(n)]  # type: ignore[attr-defined]
    return found


def where(path: Path) -> str:
    return str(path.relative_to(settings.BASE_DIR))


def test_every_visible_word_of_a_template_is_marked_for_translation():
    templates = [
        path
        for path in project_files({".html", ".txt"})
        if "templates" in path.relative_to(settings.BASE_DIR).parts
    ]
    assert len(templates) > 20, "the templates were not found"

    unmarked = {
        where(path): found
        for path in templates
        if (found := untranslated_template_text(path.read_text("utf-8"), path.suffix))
    }
    assert unmarked == {}


def test_every_visible_python_string_is_marked_for_translation():
    unmarked = {
        where(path): found
        for path in project_files({".py"})
        if (found := untranslated_python_text(path.read_text("utf-8")))
    }
    assert unmarked == {}


def test_javascript_modules_take_their_words_from_the_page():
    modules = sorted((Path(settings.BASE_DIR) / "static" / "js").rglob("*.js"))
    assert modules, "no JavaScript modules found"

    unmarked = {
        where(path): found
        for path in modules
        if (found := untranslated_js_text(path.read_text("utf-8")))
    }
    assert unmarked == {}


@pytest.mark.parametrize(
    ("source", "suffix"),
    [
        ("<p>Study date</p>", ".html"),
        ('<button title="Close the viewer">×</button>', ".html"),
        ('<input placeholder="{{ x }} Search">', ".html"),
        ('<div data-label-start="Dictate"></div>', ".html"),
        ("{% translate 'Code' %}\nValid for ten minutes.", ".txt"),
    ],
)
def test_the_template_check_finds_english_nobody_marked(source, suffix):
    assert untranslated_template_text(source, suffix) != []


def test_the_template_check_lets_marked_text_and_code_pass():
    source = (
        "{% load i18n %}{% block body_class %}centered{% endblock %}"
        '<p title="{% translate "Close" %}">{% translate "Study date" %} '
        "{{ study.study_date|date:'SHORT_DATE_FORMAT' }} · DICOM · 3 mm</p>"
        "{% blocktranslate with n=count %}{{ n }} images{% endblocktranslate %}"
        '<script type="module">const word = "hidden";</script>Nimbus PACS'
    )
    assert untranslated_template_text(source, ".html") == []


@pytest.mark.parametrize(
    "source",
    [
        'label.textContent = "Saving…";',
        "button.title = `Close ${name}`;",
        'select.append(new Option("Any modality", ""));',
        "alert('Request failed');",
        'node.setAttribute("aria-label", "Next image");',
    ],
)
def test_the_javascript_check_finds_words_of_its_own(source):
    assert untranslated_js_text(source) != []


def test_the_javascript_check_lets_words_from_the_page_pass():
    source = (
        "label.textContent = strings.saving;\n"
        'cell.textContent = `${a} / ${b} · ${c}`;\nstate.textContent = "";'
    )
    assert untranslated_js_text(source) == []


@pytest.mark.parametrize(
    "source",
    [
        'raise ValidationError("Give a date.")',
        'messages.info(request, "Saved.")',
        'name = forms.CharField(label="Name")',
        'title = models.CharField(verbose_name="title")',
        'return JsonResponse({"detail": "No such study."}, status=404)',
        'raise exceptions.NotFound("No such report.")',
    ],
)
def test_the_python_check_finds_english_nobody_marked(source):
    assert untranslated_python_text(source) != []


def test_the_python_check_lets_marked_and_machine_text_pass():
    source = (
        'raise ValidationError(_("Give a date."))\n'
        'messages.info(request, _("Saved."))\n'
        'return JsonResponse({"detail": _("No such study."), "code": "gone"})\n'
        'text = serializers.CharField(help_text="Sections, for the OpenAPI schema.")\n'
        'logger.info("Study %s indexed", uid)\n'
    )
    assert untranslated_python_text(source) == []
