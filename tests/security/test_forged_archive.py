"""Finding 2: `ledger import-log` must refuse forged archives and write nothing of them.

Each attack starts from a genuine export of a ledger whose KAZ and VNM offices sign their
events, changes it as an attacker would (usually also writing a manifest that is validly signed
by the attacker's own key, so that only the line checks stand in the way), imports it through
the real CLI into a fresh ledger that holds the same key registry, and checks the exit code,
the message (line, field) and that the target stream is still empty.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import hashlib
import json
import shutil
import stat
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from events.codec import encode
from events.envelope import Envelope
from events.integrity import content_hash
from events.keys import KeyRegistry
from events.model import CountryShare
from events.signing import new_key_pair, public_key_of, sign_hash
from events.store import EventStore
from replay.archive import import_log
from replay.archive_check import (
    MAX_LINE,
    ArchiveChecker,
    ArchivedMessage,
    ArchiveError,
    ArchiveRejectedError,
    ImportRules,
)
from replay.manifest import Manifest, manifest_path, sign_manifest
from services.cli.exit_codes import ExitCode
from services.cli.main import main
from services.infra.config import Settings
from services.infra.office_keys import create_office_key, ledger_seed_path, read_office_seed
from services.infra.stack import open_ledger
from tests.factories import make_reported, make_revised, sealed

T = dt.datetime(2021, 6, 30, tzinfo=dt.UTC)
PREFIX = Settings().namespace.prefix


def ledger(data_dir: Path, *args: str) -> tuple[int, str]:
    """Run the real `ledger` command on a data directory's embedded server."""
    result = CliRunner().invoke(
        main, ["--data-dir", str(data_dir), *args], env={"LEDGER_NATS_URL": ""}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def stored(data_dir: Path) -> int:
    """The last sequence of a data directory's stream: 0 when nothing was ever written."""

    async def last() -> int:
        async with open_ledger(Settings(data_dir=data_dir)) as opened:
            return await opened.store.last_sequence()

    return asyncio.run(last())


def messages(data_dir: Path) -> list[tuple[int, bytes]]:
    """Every message of a data directory's stream: its sequence and body."""

    async def read() -> list[tuple[int, bytes]]:
        async with open_ledger(Settings(data_dir=data_dir)) as opened:
            return [(m.sequence, m.data) async for b in opened.store.read_raw() for m in b]

    return asyncio.run(read())


def _signed(event: Envelope[Any], seed: str) -> Envelope[Any]:
    return msgspec.structs.replace(event, signature=sign_hash(seed, content_hash(event)))


class Source:
    """The genuine ledger: its data directory, export, and the seeds of its offices."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.archive = data_dir / "export.jsonl"
        self.gz_archive = data_dir / "export.jsonl.gz"
        self.seeds = {office: read_office_seed(data_dir, office) or "" for office in ("KAZ", "VNM")}

    @property
    def registry(self) -> Path:
        return self.data_dir / "keys" / "registry.json"

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.archive.read_text().splitlines()]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    """A ledger with 4 events (KAZ and VNM signed, HQ without a key), exported both ways."""
    data_dir = tmp_path_factory.mktemp("genuine")
    for office in ("KAZ", "VNM"):
        create_office_key(data_dir, office)
    kaz_seed = read_office_seed(data_dir, "KAZ") or ""
    vnm_seed = read_office_seed(data_dir, "VNM") or ""

    async def seed() -> None:
        async with open_ledger(Settings(data_dir=data_dir)) as opened:
            store = opened.store
            kaz = _signed(sealed(make_reported(office="KAZ"), office="KAZ"), kaz_seed)
            vnm = _signed(
                sealed(
                    make_reported(
                        activity_id="VNM-OPS-1",
                        office="VNM",
                        kind="operation",
                        countries=[CountryShare("VNM")],
                        metrics={"suspects_arrested": 12},
                    ),
                    office="VNM",
                ),
                vnm_seed,
            )
            hq = sealed(make_reported(activity_id="HQ-PUB-1", metrics={"participants": 40}))
            revised = _signed(
                sealed(make_revised(metrics={"people_trained": 600}), "KAZ", prev=kaz.hash),
                kaz_seed,
            )
            await store.append(kaz, 0)
            await store.append(vnm, 0)
            await store.append(hq, 0)
            await store.append(revised, 1)

    asyncio.run(seed())
    genuine = Source(data_dir)
    for archive in (genuine.archive, genuine.gz_archive):
        code, out = ledger(data_dir, "export", "--out", str(archive))
        assert code == 0, out
    return genuine


@pytest.fixture
def target(tmp_path: Path, source: Source) -> Path:
    """A fresh ledger that knows the same office keys as the genuine one."""
    data_dir = tmp_path / "target"
    (data_dir / "keys").mkdir(parents=True)
    shutil.copy(source.registry, data_dir / "keys" / "registry.json")
    return data_dir


def write_forgery(path: Path, lines: list[dict[str, Any]], attacker_seed: str) -> Path:
    """Write the lines as an archive, with a manifest that matches it, signed by the attacker."""
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    sequences = [line["sequence"] for line in lines]
    manifest = Manifest(
        count=len(lines),
        first_sequence=sequences[0],
        last_sequence=sequences[-1],
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        created_at=T.isoformat(),
        prefix=PREFIX,
        public_key=public_key_of(attacker_seed),
    )
    manifest_path(path).write_bytes(msgspec.json.encode(sign_manifest(manifest, attacker_seed)))
    return path


def event_line(sequence: int, event: Envelope[Any], subject: str | None = None) -> dict[str, Any]:
    """An archive line holding ``event``, by default on its own subject."""
    return {
        "sequence": sequence,
        "time_ns": 1_600_000_000_000_000_000 + sequence,
        "subject": subject or f"{PREFIX}.activity.{event.office}.{event.activity_id}",
        "event": json.loads(encode(event)),
    }


def assert_refused(target: Path, archive: Path, line: int, field: str, *extra: str) -> str:
    """Import ``archive`` and check it is refused at ``line`` for ``field``, writing nothing."""
    code, out = ledger(target, "import-log", str(archive), *extra)
    assert code == ExitCode.INVALID, out
    assert f"{archive}:{line}: {field}: " in out, out
    assert "Traceback" not in out
    assert stored(target) == 0
    return out


def test_a_backdated_unsigned_event_of_an_office_with_a_key_is_refused(
    source: Source, target: Path, tmp_path: Path
) -> None:
    lines = source.lines()
    claim = 1_000_000_000
    forged = sealed(
        make_reported(
            activity_id="VNM-TRAINING-9",
            office="VNM",
            countries=[CountryShare("VNM")],
            year=2019,
            metrics={"people_trained": claim},
        ),
        "VNM",
        occurred_at=dt.datetime(2019, 3, 1, tzinfo=dt.UTC),
        recorded_at=dt.datetime(2019, 3, 2, tzinfo=dt.UTC),
    )  # sealed: its hash is recomputed over the forged content, so the hash check passes
    forged_line = len(lines) + 1
    archive = write_forgery(
        tmp_path / "a.jsonl", [*lines, event_line(forged_line, forged)], new_key_pair()[0]
    )

    out = assert_refused(target, archive, forged_line, "event.signature")
    assert "unsigned, but office VNM must sign its events" in out


def test_a_forged_signature_is_refused(source: Source, target: Path, tmp_path: Path) -> None:
    lines = source.lines()
    mallory, _ = new_key_pair()
    forged = _signed(
        sealed(make_reported(activity_id="KAZ-TRAINING-7", office="KAZ"), "KAZ"), mallory
    )
    archive = write_forgery(
        tmp_path / "b.jsonl", [*lines, event_line(len(lines) + 1, forged)], mallory
    )

    out = assert_refused(target, archive, len(lines) + 1, "event.signature")
    assert "not signed by a key registered for office KAZ" in out


@pytest.mark.parametrize(
    "body",
    [
        {"event": {"note": "not an event", "metrics": {"people_trained": 5000}}},
        {"raw": base64.b64encode(b"\xff binary, not JSON").decode()},
    ],
    ids=["json", "raw"],
)
def test_a_message_that_is_not_an_event_on_hqs_subject_is_refused(
    source: Source, target: Path, tmp_path: Path, body: dict[str, Any]
) -> None:
    lines = source.lines()
    junk = {"sequence": len(lines) + 1, "time_ns": 1, "subject": f"{PREFIX}.activity.HQ.NOTE"}
    archive = write_forgery(tmp_path / "c.jsonl", [*lines, junk | body], new_key_pair()[0])

    out = assert_refused(target, archive, len(lines) + 1, "event")
    assert "--allow-non-events" in out


def test_a_genuine_event_moved_to_another_offices_subject_is_refused(
    source: Source, target: Path, tmp_path: Path
) -> None:
    lines = source.lines()
    # KAZ's own, validly signed report, put on VNM's subject: hash, prev and signature pass.
    assert lines[0]["subject"] == f"{PREFIX}.activity.KAZ.KAZ-TRAINING-1"
    lines[0]["subject"] = f"{PREFIX}.activity.VNM.KAZ-TRAINING-1"
    archive = write_forgery(tmp_path / "d.jsonl", lines, new_key_pair()[0])

    out = assert_refused(target, archive, 1, "subject")
    assert f"belongs on '{PREFIX}.activity.KAZ.KAZ-TRAINING-1'" in out


@pytest.mark.parametrize("bad_id", ["HQ.PUB.2", "HQ PUB 2", "HQ-*"])
def test_an_activity_id_that_is_not_a_token_is_refused(
    source: Source, target: Path, tmp_path: Path, bad_id: str
) -> None:
    lines = source.lines()
    forged = sealed(make_reported(activity_id=bad_id))  # HQ has no key: unsigned is allowed
    archive = write_forgery(
        tmp_path / "e.jsonl", [*lines, event_line(len(lines) + 1, forged)], new_key_pair()[0]
    )

    assert_refused(target, archive, len(lines) + 1, "event.payload.activity_id")


def test_an_unknown_office_is_refused(source: Source, target: Path, tmp_path: Path) -> None:
    lines = source.lines()
    forged = sealed(make_reported(activity_id="ATL-1", office="ATLANTIS"), "ATLANTIS")
    archive = write_forgery(
        tmp_path / "f.jsonl", [*lines, event_line(len(lines) + 1, forged)], new_key_pair()[0]
    )

    out = assert_refused(target, archive, len(lines) + 1, "event.office")
    assert "unknown office 'ATLANTIS'" in out


def test_a_line_longer_than_one_mebibyte_is_refused(
    source: Source, target: Path, tmp_path: Path
) -> None:
    lines = source.lines()
    padding = "x" * (MAX_LINE + 1)  # the padding alone is longer than a line may be
    huge = {"sequence": len(lines) + 1, "time_ns": 1, "subject": "s", "pad": padding}
    archive = write_forgery(tmp_path / "g.jsonl", [*lines, huge], new_key_pair()[0])

    out = assert_refused(target, archive, len(lines) + 1, "line")
    assert f"longer than {MAX_LINE:,} bytes" in out


def _gzip_of(path: Path, chunk: bytes, times: int) -> Path:
    with gzip.open(path, "wb", compresslevel=9) as sink:
        for _ in range(times):
            sink.write(chunk)
    return path


def test_a_gzip_bomb_beyond_the_size_bound_is_refused(target: Path, tmp_path: Path) -> None:
    # 64 MiB of lines of 1 KiB of blanks (a blank line is skipped, so only the bound stops it).
    line = b" " * 1023 + b"\n"
    total_lines = 64 * 1024
    bomb = _gzip_of(tmp_path / "bomb.jsonl.gz", line * 1024, total_lines // 1024)
    assert bomb.stat().st_size * 100 < len(line) * total_lines  # small file, big content
    bound = 16 << 20
    # The line that takes the total past the bound: every line before it fits exactly.
    first_beyond = bound // len(line) + 1

    out = assert_refused(target, bomb, first_beyond, "size", "--no-manifest", "--max-size", "16MiB")
    assert f"more than {bound:,} bytes once decompressed" in out
    assert "--max-size" in out


async def test_a_gzip_bomb_of_one_huge_line_fails_fast_in_flat_memory(
    store: EventStore, tmp_path: Path
) -> None:
    decompressed = 256 << 20
    bomb = _gzip_of(tmp_path / "line.jsonl.gz", b"a" * (1 << 20), decompressed >> 20)
    assert bomb.stat().st_size * 500 < decompressed

    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ArchiveRejectedError, match=r"line.jsonl.gz:1: line: longer than"):
            await import_log(store, bomb, rules=ImportRules(KeyRegistry()), require_manifest=False)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # It stops after one line's worth: a few MiB at most, never the 256 MiB.
    assert peak < 8 * MAX_LINE, peak
    assert seconds < 5, seconds
    assert await store.last_sequence() == 0


def test_an_archive_cut_short_after_export_is_refused_by_its_manifest(
    source: Source, target: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "cut.jsonl"
    shutil.copy(source.archive, archive)
    shutil.copy(manifest_path(source.archive), manifest_path(archive))
    # Dropping the last event (the revision to 600) leaves every remaining line valid.
    text = archive.read_text().splitlines(keepends=True)
    archive.write_text("".join(text[:-1]))
    stated = json.loads(manifest_path(archive).read_text())["sha256"]
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()

    out = assert_refused_file(target, archive, "sha256")
    assert f"the manifest says {stated}, the archive has {actual}" in out


def assert_refused_file(target: Path, archive: Path, field: str, *extra: str) -> str:
    """Like :func:`assert_refused`, for a refusal of the archive or manifest as a whole."""
    code, out = ledger(target, "import-log", str(archive), *extra)
    assert code == ExitCode.INVALID, out
    assert f": {field}: " in out, out
    assert "Traceback" not in out
    assert stored(target) == 0
    return out


def _genuine_copy(source: Source, tmp_path: Path) -> Path:
    archive = tmp_path / source.gz_archive.name
    shutil.copy(source.gz_archive, archive)
    shutil.copy(manifest_path(source.gz_archive), manifest_path(archive))
    return archive


def _exporter_key(source: Source) -> str:
    return json.loads(manifest_path(source.gz_archive).read_text())["public_key"]


def test_a_manifest_signed_by_another_key_is_refused_with_expect_key(
    source: Source, target: Path, tmp_path: Path
) -> None:
    archive = _genuine_copy(source, tmp_path)
    # The attacker re-signs an exact description of the archive with their own key.
    genuine = msgspec.json.decode(manifest_path(archive).read_bytes(), type=Manifest)
    mallory, mallory_public = new_key_pair()
    resigned = sign_manifest(msgspec.structs.replace(genuine, public_key=mallory_public), mallory)
    manifest_path(archive).write_bytes(msgspec.json.encode(resigned))
    expected = _exporter_key(source)

    out = assert_refused_file(target, archive, "public_key", "--expect-key", expected)
    assert f"signed by {mallory_public}, not by the expected key {expected}" in out


def test_a_manifest_altered_under_the_genuine_key_is_refused(
    source: Source, target: Path, tmp_path: Path
) -> None:
    archive = _genuine_copy(source, tmp_path)
    manifest = json.loads(manifest_path(archive).read_text())
    manifest["count"] += 1
    manifest_path(archive).write_text(json.dumps(manifest))

    assert_refused_file(target, archive, "signature")


def test_a_missing_manifest_is_refused_unless_asked_for(
    source: Source, target: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "bare.jsonl"
    shutil.copy(source.archive, archive)

    out = assert_refused_file(target, archive, "manifest")
    assert "--no-manifest" in out

    code, out = ledger(target, "import-log", str(archive), "--no-manifest")
    assert code == 0, out
    assert stored(target) == len(source.lines())
    assert "no manifest checked" in out


def test_signed_events_are_refused_by_a_ledger_that_does_not_know_the_keys(
    source: Source, tmp_path: Path
) -> None:
    empty = tmp_path / "keyless"
    archive = _genuine_copy(source, tmp_path)

    out = assert_refused(empty, archive, 1, "event.signature")
    assert "--registry" in out

    code, out = ledger(empty, "import-log", str(archive), "--registry", str(source.registry))
    assert code == 0, out


def test_a_genuine_signed_export_imports_at_its_sequences_and_verifies(
    source: Source, target: Path, tmp_path: Path
) -> None:
    archive = _genuine_copy(source, tmp_path)
    exporter = _exporter_key(source)
    events = len(source.lines())
    signed = sum(1 for line in source.lines() if line["event"].get("signature"))

    code, out = ledger(target, "import-log", str(archive), "--expect-key", exporter)

    assert code == 0, out
    assert f"{events} messages imported" in out
    assert f"{signed} signed, {events - signed} unsigned" in out
    assert f"exported and signed by ledger key {exporter}" in out
    assert messages(target) == messages(source.data_dir)  # same bodies at the same sequences
    assert len(messages(target)) == events
    code, out = ledger(target, "verify", "--no-projection")
    assert code == 0, out
    assert f"{events} events" in out and f"({signed} signed" in out
    # The exporter's key is its data directory's ledger key, kept private.
    seed = ledger_seed_path(source.data_dir)
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
    assert stat.S_IMODE(seed.parent.stat().st_mode) == 0o700
    assert public_key_of(seed.read_text().strip()) == exporter


def test_the_checker_is_pure_and_names_line_and_field() -> None:
    kaz_seed, kaz_public = new_key_pair()
    rules = ImportRules(KeyRegistry({"KAZ": [kaz_public]}))
    good = _signed(sealed(make_reported(office="KAZ"), "KAZ"), kaz_seed)
    checker = ArchiveChecker(rules, "mem.jsonl")

    def decode(line: dict[str, Any]) -> ArchivedMessage:
        return msgspec.json.decode(json.dumps(line), type=ArchivedMessage)

    checked = checker.check(1, decode(event_line(1, good)))
    assert (checked.office, checked.activity_id, checked.sequence) == ("KAZ", good.activity_id, 1)

    replayed = decode(event_line(3, good))  # a gap in the sequence
    with pytest.raises(ArchiveRejectedError) as caught:
        checker.check(2, replayed)
    assert (caught.value.line, caught.value.field) == (2, "sequence")
    assert checker.count == 1


class _SwapsTheArchive(EventStore):
    """A store that lets an attacker change the archive in place between the check and the
    writes: the moment the import asks how full the stream is."""

    def __init__(self, base: EventStore, change: Callable[[], None]) -> None:
        super().__init__(base.nc, base.ns)
        self._change = change

    async def last_sequence(self) -> int:
        self._change()
        return await super().last_sequence()


async def test_an_archive_changed_in_place_after_its_check_writes_nothing(
    store: EventStore, tmp_path: Path
) -> None:
    kaz_seed, kaz_public = new_key_pair()
    rules = ImportRules(KeyRegistry({"KAZ": [kaz_public]}))
    genuine = _signed(sealed(make_reported(office="KAZ"), "KAZ"), kaz_seed)
    archive = tmp_path / "swap.jsonl"
    archive.write_text(json.dumps(event_line(1, genuine)) + "\n")
    trained = genuine.payload.metrics["people_trained"]
    inflated = trained * 1000
    original = archive.read_bytes()
    changed = original.replace(
        f'"people_trained": {trained}'.encode(), f'"people_trained": {inflated}'.encode()
    )
    assert changed != original

    def change() -> None:
        with open(archive, "r+b") as handle:  # in place: the importer's open file sees it
            handle.write(changed)

    with pytest.raises(ArchiveError, match=r"changed while it was imported .*; 0 messages"):
        await import_log(
            _SwapsTheArchive(store, change), archive, rules=rules, require_manifest=False
        )
    assert await store.last_sequence() == 0
