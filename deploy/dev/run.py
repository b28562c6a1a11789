"""`make run`: migrate, create the demo tenant and user, start every process.

Runs inside deploy/dev/services.py, which provides DATABASE_URL and REDIS_URL.
The web server, DICOM and HL7 listeners, worker and beat run as one process
group forked from a preloaded parent (deploy/dev/process_group.py); Ctrl-C
(or SIGTERM) stops them together.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
sys.path.insert(0, str(ROOT))

from deploy.dev.process_group import run_group  # noqa: E402
from deploy.dev.processes import commands  # noqa: E402

DEMO = {
    "schema": "demo",
    "name": "Demo Hospital",
    "domain": "demo.localhost",
    "ae_title": "NIMBUS_DEMO",
    "ris_host": "127.0.0.1",
    "ris_port": "2575",
    "username": "demo.radiologist",
    "password": "Nimbus-demo-2026!",
    "totp_secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
}


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, check=True)


def bootstrap() -> None:
    manage("collectstatic", "--noinput", "--verbosity", "0")
    manage("migrate_schemas", "--shared", "--verbosity", "0")
    manage(
        "create_tenant",
        "--schema",
        DEMO["schema"],
        "--name",
        DEMO["name"],
        "--domain",
        DEMO["domain"],
        "--ae-title",
        DEMO["ae_title"],
        "--ris-host",
        DEMO["ris_host"],
        "--ris-port",
        DEMO["ris_port"],
    )
    manage("migrate_schemas", "--tenant", "--verbosity", "0")
    manage(
        "create_user",
        "--tenant",
        DEMO["schema"],
        "--username",
        DEMO["username"],
        "--role",
        "radiologist",
        "--password",
        DEMO["password"],
        "--totp-secret",
        DEMO["totp_secret"],
    )


def processes() -> dict[str, list[str]]:
    return commands(
        PYTHON,
        web_host=os.environ.get("NIMBUS_WEB_HOST", "127.0.0.1"),
        web_port=os.environ.get("NIMBUS_WEB_PORT", "8000"),
        var_dir=Path(os.environ.get("NIMBUS_VAR_DIR", ROOT / "var")),
    )


def main() -> int:
    bootstrap()
    port = os.environ.get("NIMBUS_WEB_PORT", "8000")
    print(
        "\nNimbus PACS is starting.\n"
        f"  Worklist:       http://{DEMO['domain']}:{port}/\n"
        f"  User:           {DEMO['username']}\n"
        f"  Password:       {DEMO['password']}\n"
        f"  TOTP secret:    {DEMO['totp_secret']} (add it to an authenticator app)\n"
        f"  DICOM:          AE title {DEMO['ae_title']} on port "
        f"{os.environ.get('NIMBUS_DICOM_PORT', '11112')}\n"
        f"  RIS (HL7 MLLP): {DEMO['ris_host']}:{DEMO['ris_port']}\n"
        f"  Orders (HL7):   port {os.environ.get('NIMBUS_HL7_PORT', '2576')}, "
        f"MSH-6 {DEMO['schema']}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
    return run_group(processes())


if __name__ == "__main__":
    sys.exit(main())
