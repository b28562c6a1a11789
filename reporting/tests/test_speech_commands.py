from reporting.speech.commands import Piece, apply_spoken_commands, macro_phrase


def texts(words: str) -> list[Piece]:
    return apply_spoken_commands(words)


def test_it_turns_spoken_punctuation_into_marks_and_capitalises_sentences() -> None:
    assert texts("findings colon the lungs are clear period no effusion period") == [
        Piece(text="Findings: the lungs are clear. No effusion.")
    ]


def test_it_puts_a_comma_after_the_word_before_it() -> None:
    assert texts("small left effusion comma no pneumothorax") == [
        Piece(text="Small left effusion, no pneumothorax")
    ]


def test_it_breaks_lines_and_paragraphs_without_stray_spaces() -> None:
    assert texts("findings colon new line lungs clear period new paragraph end") == [
        Piece(text="Findings:\nLungs clear.\n\nEnd")
    ]


def test_scratch_that_drops_the_words_since_the_last_mark() -> None:
    assert texts("no effusion period small nodule scratch that no nodule period") == [
        Piece(text="No effusion. No nodule.")
    ]


def test_scratch_that_at_the_start_leaves_nothing() -> None:
    assert texts("hypodense lesion scratch that") == []


def test_next_field_splits_the_text_around_an_editor_command() -> None:
    assert texts("normal study next field no follow up") == [
        Piece(text="Normal study"),
        Piece(command="next_field"),
        Piece(text="No follow up"),
    ]


def test_a_mark_with_no_word_before_it_is_ignored() -> None:
    assert texts("period comma lungs clear") == [Piece(text="Lungs clear")]


def test_it_uses_the_commands_of_the_report_language() -> None:
    assert apply_spoken_commands("poumons clairs point", "fr") == [
        Piece(text="Poumons clairs.")
    ]
    assert apply_spoken_commands("kein erguss punkt", "de") == [
        Piece(text="Kein erguss.")
    ]


def test_a_spoken_macro_carries_its_name_to_the_end_of_the_utterance() -> None:
    assert apply_spoken_commands("no effusion period macro normal chest") == [
        Piece(text="No effusion."),
        Piece(text="normal chest", command="macro"),
    ]


def test_a_macro_name_ends_at_the_next_command() -> None:
    pieces = apply_spoken_commands("macro normal chest next field impression")

    assert pieces == [
        Piece(text="normal chest", command="macro"),
        Piece(command="next_field"),
        Piece(text="Impression"),
    ]


def test_macro_without_a_name_is_ignored_and_german_says_makro() -> None:
    assert apply_spoken_commands("macro") == []
    assert apply_spoken_commands("makro normaler thorax", "de") == [
        Piece(text="normaler thorax", command="macro")
    ]


def test_the_language_model_learns_the_phrase_of_each_macro() -> None:
    assert macro_phrase("Normal  Chest") == "macro normal chest"
    assert macro_phrase("normaler Thorax", "de") == "makro normaler thorax"
