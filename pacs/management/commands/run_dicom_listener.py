import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from pacs.dicom import configure_pydicom
from pacs.dimse.listener import serve


class Command(BaseCommand):
    help = "Run the DICOM listener (C-ECHO, C-STORE) for every tenant."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.NIMBUS_DICOM_HOST)
        parser.add_argument("--port", type=int, default=settings.NIMBUS_DICOM_PORT)

    def handle(self, *args: object, **options: object) -> None:
        configure_pydicom()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        self.stdout.write(f"DICOM listener on {options['host']}:{options['port']}")
        serve(str(options["host"]), int(options["port"]), stop)  # type: ignore[call-overload]
