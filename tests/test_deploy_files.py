"""The deployment examples in deploy/ against the code they start.

They are read by operators, not run by the other tests: a queue added to
config/celery.py or a TLS path added to nimbus.env.example would otherwise
leave a layout that starts and silently never runs a kind of work, or a
process that cannot read its certificate.
"""

import re
import shlex
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

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


# --- Database roles (docs/operations.md, "Database roles") -------------------

SUPERUSER = "postgres"


def database_user(url: str) -> str:
    # Compose fills ${VAR:?message} in; its "?" would start a query here.
    return urlparse(re.sub(r"\$\{[^}]*\}", "secret", url)).username or ""


def env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def unit_env_files(unit: Path) -> list[str]:
    return re.findall(r"^EnvironmentFile=-?(\S+)$", unit.read_text(), re.MULTILINE)


def test_only_the_migrate_service_connects_as_the_owner_the_rest_as_the_app() -> None:
    users = {
        name: database_user(str(service["environment"]["DATABASE_URL"]))  # type: ignore[index]
        for name, service in nimbus_services().items()
    }

    assert users.pop("migrate") == "nimbus_owner"
    assert {"web-1", "web-2", "dicom", "hl7", "beat"} <= set(users)
    assert set(users.values()) == {"nimbus_app"}


def test_the_compose_postgres_makes_both_roles_and_nimbus_is_not_its_superuser() -> (
    None
):
    postgres = compose_services()["postgres"]
    environment = postgres["environment"]
    mounts = dict(str(volume).rsplit(":", 2)[:2] for volume in postgres["volumes"])  # type: ignore[union-attr]
    init = DEPLOY / "postgres" / "init-roles.sh"

    assert environment["POSTGRES_USER"] == SUPERUSER  # type: ignore[index]
    assert "POSTGRES_DB" not in environment  # type: ignore[operator]
    assert {"NIMBUS_OWNER_PASSWORD", "NIMBUS_APP_PASSWORD"} <= set(environment)  # type: ignore[arg-type]
    assert mounts["./postgres/init-roles.sh"].startswith("/docker-entrypoint-initdb.d/")
    sql_path = mounts["./postgres/roles.sql"]
    assert f'"${{NIMBUS_ROLES_SQL:-{sql_path}}}"' in init.read_text()
    assert init.stat().st_mode & 0o111, (
        "the image sources, not runs, a script not executable"
    )
    # Over TCP: the first start's init server answers on the socket only.
    assert "127.0.0.1" in postgres["healthcheck"]["test"]  # type: ignore[index]


def test_the_init_script_makes_an_owner_and_an_app_role_neither_a_superuser() -> None:
    init = (DEPLOY / "postgres" / "init-roles.sh").read_text()
    sql = (DEPLOY / "postgres" / "roles.sql").read_text()

    assert "-v owner=nimbus_owner" in init and "-v app=nimbus_app" in init
    for role in (':"owner"', ':"app"'):
        assert (
            f"ALTER ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" in sql
        )
    assert "CREATE DATABASE %I OWNER %I', :'database', :'owner'" in sql
    assert 'GRANT :"owner" TO' not in sql


def test_systemd_services_read_the_app_url_and_only_migrations_the_owners() -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    app = env_file_values(DEPLOY / "nimbus.env.example")["DATABASE_URL"]
    owner = env_file_values(DEPLOY / "owner.env.example")["DATABASE_URL"]
    wrapper = (DEPLOY / "systemd" / "nimbus-owner").read_text()

    assert database_user(app) == "nimbus_app"
    assert database_user(owner) == "nimbus_owner"
    assert len(units) >= 6
    for unit in units:
        expected = ["/etc/nimbus/nimbus.env"]
        if unit.name == "nimbus-migrate.service":
            expected.append("/etc/nimbus/owner.env")  # last: its URL wins
        assert unit_env_files(unit) == expected, unit.name
    assert re.findall(r"EnvironmentFile=(\S+)", wrapper) == [
        "/etc/nimbus/nimbus.env",
        "/etc/nimbus/owner.env",
    ]


def test_every_image_is_pinned_to_a_release() -> None:
    for name, service in compose_services().items():
        image = str(service.get("image", ""))
        if image == NIMBUS_IMAGE:
            continue  # built from this repository
        assert ":" in image and not image.endswith(":latest"), (name, image)


def test_the_nginx_upstream_names_the_web_units_the_docs_enable() -> None:
    upstream = (DEPLOY / "nginx" / "upstream-systemd.conf").read_text()
    enabled = re.findall(r"nimbus-web@(\d+)", (ROOT / "docs/operations.md").read_text())
    assert sorted(re.findall(r"server 127\.0\.0\.1:(\d+);", upstream)) == sorted(
        set(enabled)
    )


def test_static_files_are_collected_into_the_image_not_the_var_volume() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    static_root = re.search(r"NIMBUS_STATIC_ROOT=(\S+)", dockerfile)
    assert static_root is not None
    assert dockerfile.index("NIMBUS_STATIC_ROOT=") < dockerfile.index("collectstatic")
    for service in nimbus_services().values():
        for volume in service.get("volumes", []):
            mount = PurePosixPath(str(volume).split(":")[1])
            assert not PurePosixPath(static_root.group(1)).is_relative_to(mount)


def test_backups_have_a_volume_the_nimbus_user_may_write() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(
        r"install -d -o nimbus -g nimbus -m 0700 /var/backups/nimbus", dockerfile
    )
    for name, service in nimbus_services().items():
        assert "nimbus-backups:/var/backups/nimbus" in [
            str(v).split("  #")[0] for v in service.get("volumes", [])
        ], name
