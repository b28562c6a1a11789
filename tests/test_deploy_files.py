"""The deployment examples in deploy/ against the code they start.

They are read by operators, not run by the other tests: a queue added to
config/celery.py or a TLS path added to nimbus.env.example would otherwise
leave a layout that starts and silently never runs a kind of work, or a
process that cannot read its certificate.
"""

import re
import shlex
from pathlib import Path, PurePosixPath

import yaml

from config.celery import QUEUES

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
NIMBUS_IMAGE = "nimbus-pacs:latest"


def compose_services() -> dict[str, dict[str, object]]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]


def nimbus_services() -> dict[str, dict[str, object]]:
    return {
        name: service
        for name, service in compose_services().items()
        if service.get("image") == NIMBUS_IMAGE
    }


def queues_of(command: list[str]) -> set[str]:
    if "worker" not in command or "-Q" not in command:
        return set()
    return set(command[command.index("-Q") + 1].split(","))


def tls_paths_in_the_env_example() -> set[str]:
    text = (DEPLOY / "nimbus.env.example").read_text()
    return set(re.findall(r"/etc/nimbus/tls/[\w.-]+", text))


def test_the_systemd_target_names_a_worker_for_every_celery_queue() -> None:
    target = (DEPLOY / "systemd" / "nimbus.target").read_text()
    operations = (ROOT / "docs" / "operations.md").read_text()

    for queue in QUEUES:
        assert f"nimbus-worker@{queue}" in target, queue
        assert f"nimbus-worker@{queue}" in operations, queue


def test_the_compose_workers_consume_every_celery_queue() -> None:
    consumed: set[str] = set()
    for service in compose_services().values():
        command = service.get("command")
        if isinstance(command, list):
            consumed |= queues_of(command)

    assert consumed == set(QUEUES)


def test_every_nimbus_container_reads_the_tls_files_the_settings_name() -> None:
    paths = tls_paths_in_the_env_example()
    assert paths, "nimbus.env.example names no file under /etc/nimbus/tls"
    services = nimbus_services()
    assert {"web-1", "dicom", "hl7", "worker-delivery", "beat"} <= set(services)

    for name, service in services.items():
        mounts = [str(volume).split(":") for volume in service.get("volumes", [])]
        for path in paths:
            assert any(
                PurePosixPath(path).is_relative_to(target)
                for _source, target, *_mode in mounts
            ), f"{name} cannot read {path}"
        tls = [mount for mount in mounts if mount[1] == "/etc/nimbus/tls"]
        assert tls and tls[0][2:] == ["ro"], f"{name} mounts its TLS files writable"


def test_each_systemd_worker_unit_takes_its_queue_from_the_instance_name() -> None:
    unit = (DEPLOY / "systemd" / "nimbus-worker@.service").read_text()
    [exec_start] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]

    assert queues_of(shlex.split(exec_start)) == {"%i"}
