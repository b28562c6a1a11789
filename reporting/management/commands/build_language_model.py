"""Rebuild the shipped radiology language model from the corpus in the repo."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from reporting.speech import language_model


class Command(BaseCommand):
    help = (
        "Build reporting/speech/model/<language>/radiology.lm and radiology.dict "
        "from reporting/speech/corpus/radiology-<language>.txt (same corpus, "
        "same bytes)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--language", default="en")
        parser.add_argument("--out", default="", help="another output folder")

    def handle(self, *args: Any, **options: Any) -> None:
        language = options["language"]
        corpus = language_model.base_corpus_path(language)
        if not corpus.is_file():
            raise CommandError(f"No corpus for {language}: {corpus}")
        out = options["out"] or language_model.base_model_dir(language)
        try:
            build = language_model.build_model(
                [corpus.read_text(encoding="utf-8")],
                language_model.Path(out),
                language,
            )
        except language_model.MissingPronunciation as error:
            raise CommandError(
                f"{error}. Add them to reporting/speech/pronunciations-{language}.dict."
            ) from error
        self.stdout.write(
            f"Built {build.lm_path} and {build.dict_path}: "
            f"{build.sentences} training sentences, {build.words} words."
        )
