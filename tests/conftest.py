"""Shared fixtures: an isolated embedded gateway per test (SQLite file, key file in tmp)."""

from __future__ import annotations

import asyncio
import atexit
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.engine import make_url

from anonymization import KekSet
from gateway.app import create_app
from gateway.database import open_database, prepare_sqlite_file
from gateway.migrate import upgrade_to_head
from gateway.settings import Settings, load_settings
from gateway.sources import CreatedSource, create_source
from observability import create_tracer_provider
from tests.helpers import MakeSource, bearer, embedded_environ, last_json_line
from tests.services import POSTGRES_ADMIN_URL, require_service


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(environ=embedded_environ(tmp_path))


_sqlite_template: list[Path] = []  # this process's migrated database, copied for each test


def migrate_embedded(database_url: str) -> None:
    """`upgrade_to_head` of a new SQLite database, as a copy of one this test process migrated
    once: the migrations cost about 0.1 s a test, the copy about a millisecond. The
    migrations themselves are tested in test_migrations.py."""
    target = Path(make_url(database_url).database or "")
    if target.exists():
        upgrade_to_head(database_url)  # an existing database is migrated, as ever
        return
    if not _sqlite_template:
        folder = Path(tempfile.mkdtemp(prefix="consentgate-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = folder / "template.db"
        upgrade_to_head(f"sqlite:///{template}")
        # closed, the database has checkpointed its write-ahead log: the file is all of it
        assert not Path(f"{template}-wal").exists()
        _sqlite_template.append(template)
    prepare_sqlite_file(database_url)  # its folders, private
    shutil.copyfile(_sqlite_template[0], target)
    target.chmod(0o600)


@pytest.fixture
def keks(settings: Settings) -> KekSet:
    return KekSet.load(settings.key_file)


@pytest.fixture
def migrated(settings: Settings) -> Settings:
    migrate_embedded(settings.database_url)
    return settings


@pytest.fixture
def make_source(migrated: Settings) -> MakeSource:
    def make(
        name: str = "app",
        jurisdiction: str = "none",
        config: dict[str, Any] | None = None,
        policy: dict[str, Any] | None = None,
    ) -> CreatedSource:
        async def create() -> CreatedSource:
            engine = open_database(migrated.database_url)
            try:
                return await create_source(engine, name, jurisdiction, config, policy)  # type: ignore[arg-type]
            finally:
                await engine.dispose()

        return asyncio.run(create())

    return make


@pytest.fixture
def source(make_source: MakeSource) -> CreatedSource:
    return make_source("app", "none")


@pytest.fixture
def client(migrated: Settings, keks: KekSet) -> Iterator[TestClient]:
    with TestClient(create_app(migrated, keks)) as test_client:
        yield test_client


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    from benchmarks.scale_out import scratch_database

    admin = make_url(POSTGRES_ADMIN_URL)
    require_service("PostgreSQL", admin.host or "127.0.0.1", admin.port or 5432)
    with scratch_database(POSTGRES_ADMIN_URL, "test") as database_url:
        yield database_url


@pytest.fixture
def auditor(
    migrated: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, str]:
    """Bearer headers of an auditor token from `consentgate tokens create`; the CLI now points
    at this test's database and receipt key (for `audit verify` too)."""
    from gateway.cli import main
    from tests.helpers import dump_database

    monkeypatch.setenv("CONSENTGATE_DATABASE_URL", migrated.database_url)
    monkeypatch.setenv("CONSENTGATE_RECEIPT_KEY_FILE", migrated.receipt_key_file)
    capsys.readouterr()  # what a running app logged before
    assert main(["tokens", "create", "--role", "auditor"]) == 0
    printed = last_json_line(capsys.readouterr().out)
    assert printed["role"] == "auditor"
    token: str = printed["token"]
    assert token.startswith("at_")
    assert token not in dump_database(migrated.database_url)  # only its hash is stored
    return bearer(token)


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced(
    migrated: Settings, keks: KekSet, exported: InMemorySpanExporter
) -> Iterator[TestClient]:
    """A client whose gateway exports its spans to `exported`."""
    provider = create_tracer_provider(service_version="test", exporter=exported)
    with TestClient(create_app(migrated, keks, tracer_provider=provider)) as client:
        yield client


@pytest.fixture
def admin(auditor: dict[str, str], capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """Bearer headers of an admin token (the CLI points at this test's database)."""
    from gateway.cli import main
    from tests.helpers import bearer

    capsys.readouterr()  # what a running app logged before
    assert main(["tokens", "create", "--role", "admin"]) == 0
    return bearer(last_json_line(capsys.readouterr().out)["token"])


@pytest.fixture
def nats_stream() -> Iterator[tuple[str, str]]:
    """(NATS URL, a fresh JetStream stream name), the stream deleted afterwards."""
    from tests.services import require_nats

    url = require_nats()
    name = "CGTEST" + secrets.token_hex(4).upper()
    yield url, name

    async def delete() -> None:
        import nats
        from nats.js.errors import NotFoundError

        connection = await nats.connect(url)
        try:
            await connection.jetstream().delete_stream(name)
        except NotFoundError:
            pass
        finally:
            await connection.close()

    asyncio.run(delete())


@pytest.fixture(params=["embedded", "scaled"])
def shaped(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Both shapes, one run each: SQLite + the in-process outbox, and PostgreSQL + NATS
    JetStream. A test module opts in by making its `migrated` this fixture; the scaled run
    skips (or fails, with CONSENTGATE_REQUIRE_SERVICES=1) without the services."""
    if request.param == "embedded":
        migrate_embedded(settings.database_url)
        return settings
    import msgspec

    database: str = request.getfixturevalue("postgres_database")
    nats_url, stream = request.getfixturevalue("nats_stream")
    scaled = msgspec.structs.replace(
        settings, database_url=database, bus_url=nats_url, nats_stream=stream
    )
    upgrade_to_head(database)
    return scaled
