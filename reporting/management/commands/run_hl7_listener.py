import signal
import threading
from functools import partial

from django.core.management.base import BaseCommand, CommandParser
from django.db import connections

from config.env import env_int, env_str
from reporting.hl7_listener import answer_order_message
from reporting.mllp import MllpServer


class Command(BaseCommand):
    help = "Run the HL7 listener: orders (ORM^O01, OMI^O23) over MLLP."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=env_str("NIMBUS_HL7_HOST", "127.0.0.1"))
        parser.add_argument(
            "--port", type=int, default=env_int("NIMBUS_HL7_PORT", 2576)
        )
        parser.add_argument(
            "--tenant",
            default=env_str("NIMBUS_HL7_TENANT", ""),
            help="Schema name of the one tenant of this listener; "
            "by default MSH-6 (receiving facility) names it.",
        )

    def handle(self, *args: object, **options: object) -> None:
        answer = partial(answer_order_message, tenant_schema=str(options["tenant"]))
        server = MllpServer(
            (str(options["host"]), int(options["port"])),  # type: ignore[call-overload]
            answer,
            on_connection_end=connections.close_all,
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = server.server_address[:2]
        self.stdout.write(f"HL7 listener on {host}:{port}", ending="\n")
        self.stdout.flush()
        stop.wait()
        server.shutdown()
        server.server_close()
