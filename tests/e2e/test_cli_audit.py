"""The auditor's commands end to end: each runs as a user would, on a real embedded server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from events.keys import load_registry
from replay.tree import TreeStore, tree_path
from services.cli.exit_codes import ExitCode
from services.cli.main import main
from services.infra.config import Settings
from services.infra.office_keys import ledger_seed
from services.infra.stack import open_ledger
from services.notary.service import Notary
from tests.factories import make_reported, make_revised, sealed

T = dt.datetime(2021, 6, 30, tzinfo=dt.UTC)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory whose embedded store holds a report (before T) and a revision (after)."""

    async def seed() -> None:
        # Through open_ledger, as the commands themselves open the data directory.
        async with open_ledger(Settings(data_dir=tmp_path)) as opened:
            store = opened.store
            reported = sealed(make_reported(), recorded_at=T - dt.timedelta(days=1))
            await store.append(reported, 0)
            revised = sealed(
                make_revised(metrics={"people_trained": 600}),
                prev=reported.hash,
                recorded_at=T + dt.timedelta(days=1),
            )
            await store.append(revised, 1)

    asyncio.run(seed())
    return tmp_path


def ledger(data_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["--data-dir", str(data_dir), *args], env={"LEDGER_NATS_URL": ""}
    )
    return result.exit_code, result.output


def test_history_as_json(data_dir: Path) -> None:
    code, out = ledger(data_dir, "history", "KAZ-TRAINING-1", "--json")
    assert code == 0, out
    entries = json.loads(out)
    assert [e["type"] for e in entries] == ["ActivityReported", "ActivityRevised"]
    assert entries[1]["changes"] == [
        {"field": "metrics", "old": {"people_trained": 571}, "new": {"people_trained": 600}}
    ]


def test_history_of_an_unknown_activity_is_not_found(data_dir: Path) -> None:
    code, out = ledger(data_dir, "history", "NOPE")
    assert code == ExitCode.NOT_FOUND
    assert "no activity 'NOPE' in the ledger" in out


def test_replay_as_of_writes_the_past_into_a_file(data_dir: Path) -> None:
    out_file = data_dir / "asof.db"
    code, out = ledger(
        data_dir, "replay", "--as-of", "2021-06-30T00:00:00Z", "--out", str(out_file)
    )
    assert code == 0, out
    import sqlite3

    conn = sqlite3.connect(out_file)
    (total,) = conn.execute(
        "SELECT total FROM by_country WHERE country = 'KAZ' AND metric = 'people_trained'"
    ).fetchone()
    assert total == 571

    code, out = ledger(
        data_dir, "replay", "--as-of", "2021-06-30T00:00:00Z", "--out", str(out_file)
    )
    assert code == ExitCode.FAILED and "exists" in out


def test_an_instant_without_a_time_zone_is_refused(data_dir: Path) -> None:
    code, out = ledger(data_dir, "replay", "--as-of", "2021-06-30T00:00:00", "--out", "x.db")
    assert code == ExitCode.USAGE
    assert "has no time zone" in out


def test_verify_is_ok_then_compares_the_projection(data_dir: Path) -> None:
    code, out = ledger(data_dir, "verify")
    assert code == 0, out
    assert "2 events of 1 activities checked" in out and "verify: OK" in out

    assert ledger(data_dir, "rebuild")[0] == 0
    code, out = ledger(data_dir, "verify", "--json")
    report = json.loads(out)
    assert (code, report["ok"], report["compared_at"]) == (0, True, 2)


def test_verify_requiring_signatures_fails_unsigned_events(data_dir: Path) -> None:
    code, out = ledger(data_dir, "verify", "--require-signatures", "--no-projection")
    assert code == ExitCode.FAILED
    assert "FAIL sequence 1 [signature]" in out and "verify: FAILED" in out


def test_diff_between_two_instants(data_dir: Path) -> None:
    code, out = ledger(data_dir, "diff", "--from", "2021-06-01", "--to", "2021-07-31", "--json")
    assert code == 0, out
    changes = {(c["table"], c["metric"]): c for c in json.loads(out)}
    kaz = changes[("by_country", "people_trained")]
    assert (kaz["key"], kaz["before"], kaz["after"]) == ({"country": "KAZ"}, 0, 600)
    assert [e["type"] for e in kaz["events"]] == ["ActivityReported", "ActivityRevised"]


def test_export_then_import_log_into_a_fresh_ledger(
    data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    archive = data_dir / "ledger.jsonl.gz"
    code, out = ledger(data_dir, "export", "--out", str(archive))
    assert code == 0, out
    assert f"{archive}: 2 messages" in out.splitlines()
    assert Path(f"{archive}.manifest.json").exists()

    fresh = tmp_path_factory.mktemp("restored")
    code, out = ledger(fresh, "import-log", str(archive))
    assert code == 0, out
    assert "2 messages imported" in out
    code, out = ledger(fresh, "import-log", str(archive))
    assert code == ExitCode.FAILED and "already holds 2 messages" in out


def test_keys_new_keeps_the_seed_private_and_registers_the_public_key(data_dir: Path) -> None:
    code, out = ledger(data_dir, "keys", "new", "KAZ")
    assert code == 0, out
    seed = data_dir / "keys" / "KAZ.nk"
    assert stat.S_IMODE(seed.stat().st_mode) == 0o600
    public = out.split("public key ")[1].split()[0]
    assert load_registry(data_dir / "keys" / "registry.json").keys_for("KAZ") == [public]

    code, out = ledger(data_dir, "keys", "new", "ATLANTIS")
    assert code == ExitCode.INVALID and "unknown office 'ATLANTIS'" in out


def _notarise(data_dir: Path) -> None:
    """What the notary of `ledger up` does: the tree of the stream, and a signed checkpoint."""

    async def run() -> None:
        async with open_ledger(Settings(data_dir=data_dir)) as opened:
            store = opened.store
            tree = TreeStore(tree_path(data_dir, store.ns.stream), store.ns.stream, writer=True)
            notary = Notary(store, opened.source, tree, ledger_seed(data_dir), sign_every=0)
            await notary.step()
            await notary.sign()
            await notary.step()
            tree.close()

    asyncio.run(run())


def test_proofs_and_verify_against_a_kept_checkpoint(data_dir: Path) -> None:
    _notarise(data_dir)
    code, kept = ledger(data_dir, "proof", "checkpoint")
    assert code == 0, kept
    assert kept.splitlines()[1] == "2"  # two events when it was signed
    (data_dir / "kept.txt").write_text(kept)

    code, out = ledger(
        data_dir, "proof", "inclusion", "--sequence", "2", "--tree-size", "2", "--json"
    )
    assert code == 0, out
    (data_dir / "proof.json").write_text(out)
    code, out = ledger(
        data_dir,
        "proof",
        "check",
        str(data_dir / "proof.json"),
        "--checkpoint",
        str(data_dir / "kept.txt"),
    )
    assert (code, out.strip()) == (0, "ok: sequence 2 is in the tree of 2 signed by the checkpoint")

    code, out = ledger(data_dir, "proof", "consistency", "--from", "1", "--to", "3", "--json")
    assert code == 0, out
    assert json.loads(out)["second"] == 3

    code, out = ledger(data_dir, "verify", "--checkpoint", str(data_dir / "kept.txt"))
    assert code == 0, out
    assert "Merkle tree of 3 messages" in out and "1 signed checkpoints match it" in out
    assert "today's log extends the checkpoint of 2 messages" in out

    # A checkpoint whose size was edited: its signature no longer holds.
    forged = kept.replace("\n2\n", "\n1\n", 1)
    (data_dir / "forged.txt").write_text(forged)
    code, out = ledger(data_dir, "verify", "--checkpoint", str(data_dir / "forged.txt"))
    assert code == ExitCode.INVALID
    assert "does not verify" in out and "changed after it was signed" in out
    code, out = ledger(data_dir, "proof", "inclusion", "--sequence", "9")
    assert code == ExitCode.INVALID
    assert "sequence: must be 1..3" in out
