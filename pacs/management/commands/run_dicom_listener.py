import os
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from ops.heartbeat import start_heartbeat
from pacs.dicom import configure_pydicom
from pacs.dimse.listener import serve


class Command(BaseCommand):
    help = "Run the DICOM listener (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.NIMBUS_DICOM_HOST)
        parser.add_argument("--port", type=int, default=settings.NIMBUS_DICOM_PORT)
        parser.add_argument(
            "--processes", type=int, default=settings.NIMBUS_DICOM_PROCESSES
        )

    def handle(self, *args: object, **options: object) -> None:
        host, port = str(options["host"]), int(options["port"])  # type: ignore[call-overload]
        processes = int(options["processes"])  # type: ignore[call-overload]
        if processes > 1 and port == 0:
            raise CommandError("Several listener processes need a fixed port.")
        configure_pydicom()
        # Forked before any thread or connection exists, so children inherit
        # neither.
        connections.close_all()
        children = [_fork_listener(host, port) for _ in range(processes - 1)]
        self.stdout.write(f"DICOM listener on {host}:{port}, {processes} process(es)")
        heartbeat = start_heartbeat("dicom", port)
        try:
            serve(host, port, _stop_on_signals(), shared_port=processes > 1)
        finally:
            heartbeat.set()
            for pid in children:
                os.kill(pid, signal.SIGTERM)
            for pid in children:
                os.waitpid(pid, 0)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def _fork_listener(host: str, port: int) -> int:
    """Start another listener process on the same port; its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:
        serve(host, port, _stop_on_signals(), sweep=False, shared_port=True)
    finally:
        os._exit(0)
