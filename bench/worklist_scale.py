"""The worklist at scale: its first page, filters and searches over 100,000 studies.

    .venv/bin/python bench/worklist_scale.py [--studies 100000] [--repeat 50]

Starts a stack as bench/load.py does (the processes as `make run` starts
them), ingests one real CT slice over DICOM (the bulk instance rows copy its
header), then inserts ``--studies`` studies with bench/load.py's
``load_index``: patient, study, reading queue, series and instance rows, in
bulk SQL. As assignment rules would, one study in ten goes to the signed-in
radiologist and one in ten to a reading group of theirs; one in a hundred is
claimed by them.

For each worklist URL it prints:

- HTTP p50 / p95 (ms) over a session signed in through the sign-in form,
  ``--repeat`` requests each, one after the other;
- in-process: the page rendered by Django's test client inside
  ``manage.py shell`` (server time without the network), p50 of ten; the
  queries one more rendering ran and their summed time; ``EXPLAIN ANALYZE``
  of each of them that reads ``pacs_study`` (its plan's top lines and
  execution time).

Nothing here asserts a target; docs/benchmarks.md quotes the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load import latencies_ms, load_index, p50_p95  # noqa: E402
from bench.run import CT_SLICE, NODELAY, free_port  # noqa: E402
from bench.viewer import signed_in_session  # noqa: E402
from tests.support.stack import Stack, running_stack, wait_for  # noqa: E402

# The worklist's pages measured: the default and each queue filter and search.
PAGES = {
    "first page (default sort)": "",
    "page 2": "page=2",
    "Mine": "queue=mine",
    "My groups": "queue=groups",
    "Unassigned": "queue=unassigned",
    "priority STAT": "priority=stat",
    "Overdue only": "overdue=on",
    "patient ID search": "patient_id={middle}",
    "patient name search": "patient_name=Patient{middle_number}",
    "sort by date": "sort=-date",
}

# Assignments as rules would leave them, on the bulk-loaded studies.
ASSIGN_SQL = [
    "INSERT INTO reading_readinggroup (name) VALUES ('Bench body')",
    """
    INSERT INTO reading_readinggroup_members (readinggroup_id, user_id)
    SELECT g.id, u.id FROM reading_readinggroup g, accounts_user u
    WHERE g.name = 'Bench body' AND u.username = %(username)s
    """,
    """
    UPDATE reading_studyreading SET assigned_radiologist_id =
        (SELECT id FROM accounts_user WHERE username = %(username)s)
    WHERE study_id %% 10 = 3
    """,
    """
    UPDATE reading_studyreading SET assigned_group_id =
        (SELECT id FROM reading_readinggroup WHERE name = 'Bench body')
    WHERE study_id %% 10 = 4
    """,
    """
    UPDATE reading_studyreading SET claimed_at = now(), claimed_by_id =
        (SELECT id FROM accounts_user WHERE username = %(username)s)
    WHERE study_id %% 100 = 5
    """,
    "ANALYZE reading_studyreading",
]

# Run in the web's own code: the page through the test client, its queries
# captured, each one on pacs_study explained with ANALYZE.
IN_PROCESS = """
import json, statistics, time
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp import DEVICE_ID_SESSION_KEY
from django_tenants.utils import schema_context
from accounts.models import User

pages = json.loads({pages!r})
client = Client(HTTP_HOST={host!r})
with schema_context({schema!r}):
    user = User.objects.get(username={username!r})
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.get(user=user).persistent_id
    session.save()
out = {{}}
for name, query in pages.items():
    url = "/?" + query if query else "/"
    timings = []
    for _ in range(10):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    plans = []
    with schema_context({schema!r}), connection.cursor() as cursor:
        for q in captured.captured_queries:
            if "pacs_study" not in q["sql"]:
                continue
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + q["sql"])
            plans.append([row[0] for row in cursor.fetchall()])
    out[name] = {{
        "p50": statistics.median(timings),
        "queries": len(captured.captured_queries),
        "sql_ms": 1000 * sum(float(q["time"]) for q in captured.captured_queries),
        "plans": plans,
    }}
print("RESULT" + json.dumps(out))
"""


def ingest_one_slice(stack: Stack) -> None:
    command = ["storescu", "-aec", stack.ae_title, "127.0.0.1"]
    command += [str(stack.dicom_port), str(CT_SLICE)]
    subprocess.run(command, env=NODELAY, check=True, capture_output=True)
    wait_for(
        lambda: stack.sql("SELECT count(*) FROM pacs_instance")[0][0],
        what="the slice indexed",
    )


def prepare(stack: Stack, count: int) -> float:
    ingest_one_slice(stack)
    seconds = load_index(stack, count)
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f"SET search_path TO {stack.schema}, public")
        for statement in ASSIGN_SQL:
            conn.execute(statement, {"username": stack.username})  # type: ignore[arg-type]
    return seconds


def pages_for(count: int) -> dict[str, str]:
    middle = count // 2
    values = {"middle": f"BULK{middle:06d}", "middle_number": f"{middle:06d}"}
    return {name: query.format(**values) for name, query in PAGES.items()}


def in_process(stack: Stack, pages: dict[str, str]) -> dict[str, dict[str, object]]:
    code = IN_PROCESS.format(
        pages=json.dumps(pages),
        host=stack.host,
        schema=stack.schema,
        username=stack.username,
    )
    output = stack.manage("shell", "-c", code)
    return json.loads(output.split("RESULT", 1)[1])  # type: ignore[no-any-return]


def summary(plan: list[str]) -> list[str]:
    """The plan's top nodes and its execution time."""
    nodes = [line for line in plan if "->" in line or not line.startswith(" ")]
    timing = [line for line in plan if line.startswith("Execution Time")]
    return [*nodes[:8], *timing]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--plans", action="store_true", help="print whole plans")
    args = parser.parse_args()

    with (
        tempfile.TemporaryDirectory(prefix="nimbus-worklist-") as scratch,
        running_stack(Path(scratch), free_port(), grouped=True) as stack,
    ):
        seconds = prepare(stack, args.studies)
        print(f"{args.studies:,} studies loaded in bulk in {seconds:.0f} s")
        pages = pages_for(args.studies)
        base = f"http://127.0.0.1:{stack.web_port}"
        session = signed_in_session(stack, base)
        time.sleep(2)
        inside = in_process(stack, pages)
        header = f"{'worklist page':32}{'HTTP p50 / p95 ms':>20}{'Django ms':>11}"
        print(f"\n{header}{'SQL ms':>8}  queries")
        for name, query in pages.items():
            url = f"{base}/?{query}" if query else f"{base}/"
            http = p50_p95(latencies_ms(session, url, args.repeat))
            figures = inside[name]
            print(
                f"{name:32}{http:>20}{figures['p50']:>11.1f}"
                f"{figures['sql_ms']:>8.1f}  {figures['queries']}"
            )
        for name in pages:
            print(f"\n== {name}: queries on pacs_study, EXPLAIN ANALYZE")
            for plan in inside[name]["plans"]:  # type: ignore[attr-defined]
                print("\n".join(plan if args.plans else summary(plan)))
                print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
