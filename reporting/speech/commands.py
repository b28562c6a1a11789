"""Spoken commands: the words a radiologist says instead of typing.

A recogniser returns plain lower-case words; this module turns command words
into punctuation, line breaks, edits and editor commands. "Scratch that"
drops the words since the last punctuation or break of the same utterance
(text already in the report is never taken back by voice).
"""

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    PUNCTUATION = "punctuation"
    BREAK = "break"
    NEXT_FIELD = "next_field"
    SCRATCH = "scratch_that"
    # "macro normal chest": the tenant's normal text called "normal chest".
    MACRO = "macro"


# Longest phrases first within a language, so "new paragraph" wins over "new".
COMMANDS: dict[str, list[tuple[tuple[str, ...], Action, str]]] = {
    "en": [
        (("macro",), Action.MACRO, ""),
        (("new", "paragraph"), Action.BREAK, "\n\n"),
        (("new", "line"), Action.BREAK, "\n"),
        (("next", "field"), Action.NEXT_FIELD, ""),
        (("scratch", "that"), Action.SCRATCH, ""),
        (("period",), Action.PUNCTUATION, "."),
        (("full", "stop"), Action.PUNCTUATION, "."),
        (("comma",), Action.PUNCTUATION, ","),
        (("colon",), Action.PUNCTUATION, ":"),
    ],
    "fr": [
        (("macro",), Action.MACRO, ""),
        (("nouveau", "paragraphe"), Action.BREAK, "\n\n"),
        (("à", "la", "ligne"), Action.BREAK, "\n"),
        (("champ", "suivant"), Action.NEXT_FIELD, ""),
        (("efface", "ça"), Action.SCRATCH, ""),
        (("deux", "points"), Action.PUNCTUATION, ":"),
        (("point",), Action.PUNCTUATION, "."),
        (("virgule",), Action.PUNCTUATION, ","),
    ],
    "de": [
        (("makro",), Action.MACRO, ""),
        (("neuer", "absatz"), Action.BREAK, "\n\n"),
        (("neue", "zeile"), Action.BREAK, "\n"),
        (("nächstes", "feld"), Action.NEXT_FIELD, ""),
        (("streiche", "das"), Action.SCRATCH, ""),
        (("punkt",), Action.PUNCTUATION, "."),
        (("komma",), Action.PUNCTUATION, ","),
        (("doppelpunkt",), Action.PUNCTUATION, ":"),
    ],
    "nl": [
        (("macro",), Action.MACRO, ""),
        (("nieuwe", "alinea"), Action.BREAK, "\n\n"),
        (("nieuwe", "regel"), Action.BREAK, "\n"),
        (("volgend", "veld"), Action.NEXT_FIELD, ""),
        (("schrap", "dat"), Action.SCRATCH, ""),
        (("dubbele", "punt"), Action.PUNCTUATION, ":"),
        (("punt",), Action.PUNCTUATION, "."),
        (("komma",), Action.PUNCTUATION, ","),
    ],
}


@dataclass(frozen=True)
class Piece:
    """Text for the report, or (with ``command``) an instruction for the editor.

    A ``macro`` command carries the spoken macro name as its text.
    """

    text: str = ""
    command: str = ""


def apply_spoken_commands(words: str, language: str = "en") -> list[Piece]:
    """Recognised words -> report text pieces and editor commands, in order."""
    table = COMMANDS.get(language, COMMANDS["en"])
    tokens = words.lower().split()
    pieces: list[Piece] = []
    parts: list[str] = []  # the text being built: words, marks and breaks
    phrase_start = 0  # where the words after the last mark or break begin
    index = 0
    while index < len(tokens):
        matched = _match(table, tokens, index)
        if matched is None:
            parts.append(tokens[index])
            index += 1
            continue

        length, action, mark = matched
        index += length
        if action is Action.PUNCTUATION and parts:
            parts[-1] += mark
            phrase_start = len(parts)
        elif action is Action.BREAK and parts:
            parts.append(mark)
            phrase_start = len(parts)
        elif action is Action.SCRATCH:
            del parts[phrase_start:]
        elif action is Action.NEXT_FIELD:
            _flush(parts, pieces)
            pieces.append(Piece(command=action.value))
            phrase_start = 0
        elif action is Action.MACRO:
            # The name runs to the next command or the end of the utterance.
            end = index
            while end < len(tokens) and _match(table, tokens, end) is None:
                end += 1
            if end > index:
                _flush(parts, pieces)
                name = " ".join(tokens[index:end])
                pieces.append(Piece(text=name, command=action.value))
                phrase_start = 0
            index = end
    _flush(parts, pieces)
    return pieces


def _match(
    table: list[tuple[tuple[str, ...], Action, str]], tokens: list[str], index: int
) -> tuple[int, Action, str] | None:
    for phrase, action, mark in table:
        if tuple(tokens[index : index + len(phrase)]) == phrase:
            return len(phrase), action, mark
    return None


def _flush(parts: list[str], pieces: list[Piece]) -> None:
    text = _join(parts)
    parts.clear()
    if text:
        pieces.append(Piece(text=text))


def _join(parts: list[str]) -> str:
    """Words with single spaces, no space around breaks, sentences capitalised."""
    text = ""
    capitalise = True
    for part in parts:
        if part.startswith("\n"):
            text = text.rstrip(" ") + part
            capitalise = True
            continue
        if text and not text.endswith("\n"):
            text += " "
        text += part[:1].upper() + part[1:] if capitalise else part
        capitalise = part.endswith(".")
    return text.strip(" ")


def macro_phrase(name: str, language: str = "en") -> str:
    """What a reader says to insert the macro ``name``, for the language model."""
    table = COMMANDS.get(language, COMMANDS["en"])
    words = next(phrase for phrase, action, _ in table if action is Action.MACRO)
    return " ".join([*words, *name.lower().split()])
