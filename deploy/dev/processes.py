"""The commands that start Nimbus's processes, shared by `make run` and the tests.

The end-to-end tests start the product exactly the way `make run` does.
"""

from pathlib import Path


def commands(
    python: str, *, web_host: str, web_port: str, var_dir: Path, dicom_host: str = ""
) -> dict[str, list[str]]:
    """Name -> command line of the web server, DICOM and HL7 listeners, worker, beat."""
    listener = [python, "manage.py", "run_dicom_listener"]
    if dicom_host:
        listener += ["--host", dicom_host]
    celery = [python, "-m", "celery", "-A", "config"]
    return {
        # Verbosity 0: no access log. Daphne writes each request line with
        # its query string, and a QIDO-RS search carries ?PatientName=...
        # (Django's own logging still follows NIMBUS_LOG_LEVEL.)
        "web": [python, "-m", "daphne", "-b", web_host, "-p", web_port]
        + ["--verbosity", "0", "config.asgi:application"],
        "dicom": listener,
        # Orders from the RIS (ORM^O01, OMI^O23); NIMBUS_HL7_HOST/PORT.
        "hl7": [python, "manage.py", "run_hl7_listener"],
        # One process with threads: ingest batches of one study take turns on
        # its row lock anyway, and a forked pool would hold three copies of
        # Django in memory. Mingle and gossip only slow a start-up.
        "worker": celery
        + ["worker", "--loglevel", "INFO", "--pool", "threads", "--concurrency", "4"]
        + ["--without-mingle", "--without-gossip"],
        "beat": celery
        + ["beat", "--loglevel", "INFO"]
        + ["--schedule", str(var_dir / "celerybeat-schedule")],
    }
