import argparse
import signal
import ssl
import threading
from functools import partial

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from config.env import env_int, env_str
from ops.heartbeat import start_heartbeat
from pacs.dimse.transport import tls_context
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
        parser.add_argument(
            "--max-connections",
            type=int,
            default=settings.NIMBUS_HL7_MAX_CONNECTIONS,
            help="Connections served at once; one more is closed (0: no limit).",
        )
        parser.add_argument(
            "--tls-cert",
            default=settings.NIMBUS_HL7_LISTENER_TLS_CERT,
            help="PEM certificate (chain): the port then takes MLLP over TLS only.",
        )
        parser.add_argument("--tls-key", default=settings.NIMBUS_HL7_LISTENER_TLS_KEY)
        parser.add_argument(
            "--tls-ca",
            default=settings.NIMBUS_HL7_LISTENER_TLS_CA,
            help="PEM bundle of the CAs whose client certificates are accepted.",
        )
        parser.add_argument(
            "--require-client-cert",
            action=argparse.BooleanOptionalAction,
            default=settings.NIMBUS_HL7_LISTENER_TLS_REQUIRE_CLIENT_CERT,
            help="Every client must present a certificate signed by --tls-ca.",
        )

    def handle(self, *args: object, **options: object) -> None:
        answer = partial(answer_order_message, tenant_schema=str(options["tenant"]))
        server = MllpServer(
            (str(options["host"]), int(options["port"])),  # type: ignore[call-overload]
            answer,
            on_connection_end=connections.close_all,
            ssl_context=self._tls(options),
            max_connections=int(options["max_connections"]),  # type: ignore[call-overload]
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        host, port = server.server_address[:2]
        over = " over TLS" if server.ssl_context else ""
        self.stdout.write(f"HL7 listener on {host}:{port}{over}", ending="\n")
        self.stdout.flush()
        heartbeat = start_heartbeat("hl7", int(port))
        stop.wait()
        heartbeat.set()
        server.shutdown()
        server.server_close()

    def _tls(self, options: dict[str, object]) -> ssl.SSLContext | None:
        cert, key = str(options["tls_cert"] or ""), str(options["tls_key"] or "")
        ca, require = str(options["tls_ca"] or ""), bool(options["require_client_cert"])
        if not cert and not key:
            return None
        if not cert or not key or (require and not ca):
            raise CommandError(
                "TLS needs --tls-cert and --tls-key; "
                "--require-client-cert needs --tls-ca."
            )
        try:
            return tls_context(cert, key, ca, require_client=require)
        except (OSError, ssl.SSLError) as error:
            raise CommandError(f"TLS files could not be read: {error}") from error
