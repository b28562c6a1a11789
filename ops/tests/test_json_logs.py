"""NIMBUS_LOG_FORMAT=json: one object a line, fixed fields, no patient data."""

import io
import json
import logging

import pydicom
import pytest

from config.logs import logging_config
from conftest import CT_SERIES
from ops.logformat import JsonFormatter
from pacs import spool
from pacs.ingest import do_ingest_spooled_file


@pytest.mark.django_db
def test_an_ingest_logs_json_lines_without_the_patient(tenant_a, storage_dirs):
    source = CT_SERIES / "1-030.dcm"
    ds = pydicom.dcmread(source)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        do_ingest_spooled_file(spool.write_durably("hospital_a", source.read_bytes()))
        logging.getLogger("pacs.ingest").info("extra", extra={"PatientName": "X^Y"})
    finally:
        root.removeHandler(handler)

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert any(line["logger"] == "pacs.ingest" for line in lines)
    assert all(
        set(line)
        <= {"time", "level", "logger", "process", "thread", "message", "exception"}
        for line in lines
    )
    text = stream.getvalue()
    for phi in (str(ds.PatientName), str(ds.PatientID), "X^Y"):
        assert phi and phi not in text


def test_an_unknown_log_format_stops_start_up():
    with pytest.raises(ValueError, match="plain or json"):
        logging_config("INFO", "", "xml")


def test_the_json_format_is_used_for_console_and_file(tmp_path):
    config = logging_config("INFO", str(tmp_path / "nimbus.log"), "json")

    assert config["handlers"]["console"]["formatter"] == "json"
    assert config["handlers"]["file"]["formatter"] == "json"
