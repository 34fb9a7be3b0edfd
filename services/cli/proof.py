"""The verifiable log on the command line: ``ledger proof checkpoint|inclusion|consistency|check``.

``checkpoint`` prints the newest signed checkpoint of the stream's Merkle tree (a C2SP signed
note; keep it, e.g. beside a published report). ``inclusion`` and ``consistency`` print proofs
from the notary's tree in this data directory, as ``GET /v1/proofs/...`` gives them. ``check``
checks a proof against signed checkpoints with the project's small verifier
(events/tlog_verify.py) and nothing of the ledger's state: what an auditor runs.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import click
import msgspec
import nats.js.errors

from events.checkpoint import KEY_NAME, Checkpoint, open_note
from events.signing import public_key_of
from events.tlog_verify import ProofError
from projections.errors import NotYetError
from replay.proofs import (
    ConsistencyProof,
    InclusionProof,
    check_consistency,
    check_inclusion,
    consistency_of,
    inclusion_of,
)
from replay.tree import TreeStore, tree_path
from services.cli.context import run_async, settings_of
from services.infra.config import Settings
from services.infra.office_keys import ledger_seed_path
from services.infra.stack import open_ledger

__all__ = ["proof"]

_MAX_FILE = 1 << 20
"""Bytes a proof or checkpoint file may have: a proof of a tree of 2^64 leaves is ~6 KB."""


@click.group()
def proof() -> None:
    """The verifiable log: signed checkpoints of the stream's Merkle tree, and proofs.

    Example: ledger proof inclusion --sequence 42 --json > proof.json
    """


@proof.command("checkpoint")
@click.pass_context
def checkpoint(ctx: click.Context) -> None:
    """Print the newest signed checkpoint (keep it: later, prove the log extends it)."""
    settings = settings_of(ctx)

    async def newest() -> bytes:
        async with open_ledger(settings) as ledger:
            ns = ledger.store.ns
            try:
                message = await ledger.store.js.get_last_msg(ns.stream, ns.checkpoints)
            except nats.js.errors.NotFoundError:
                raise NotYetError(
                    "no checkpoint yet: the notary of `ledger up` signs one within a second "
                    "of new events"
                ) from None
            return message.data or b""

    click.echo(run_async(newest()).decode(), nl=False)


@proof.command("inclusion")
@click.option("--sequence", type=click.IntRange(min=1), required=True, help="The event's sequence.")
@click.option(
    "--tree-size", type=click.IntRange(min=1), default=None, help="The tree's size [all of it]."
)
@click.option("--json", "as_json", is_flag=True, help="Print the proof as JSON.")
@click.pass_context
def inclusion(ctx: click.Context, sequence: int, tree_size: int | None, as_json: bool) -> None:
    """Prove that the message at SEQUENCE is in the tree of TREE_SIZE leaves."""
    with _tree(settings_of(ctx)) as tree:
        found = inclusion_of(tree, sequence, tree_size)
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(found)).decode())
        return
    click.echo(f"sequence {sequence} (leaf {found.leaf_index}) in tree of {found.tree_size}")
    click.echo(f"  leaf hash  {found.leaf_hash}")
    for index, step in enumerate(found.audit_path, start=1):
        click.echo(f"  path {index:>3}   {step}")
    click.echo(f"  root hash  {found.root_hash}")


@proof.command("consistency")
@click.option("--from", "first", type=click.IntRange(min=1), required=True, help="Older size.")
@click.option("--to", "second", type=click.IntRange(min=1), default=None, help="Newer [all].")
@click.option("--json", "as_json", is_flag=True, help="Print the proof as JSON.")
@click.pass_context
def consistency(ctx: click.Context, first: int, second: int | None, as_json: bool) -> None:
    """Prove that the tree of --to leaves extends the tree of --from leaves."""
    with _tree(settings_of(ctx)) as tree:
        found = consistency_of(tree, first, second)
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(found)).decode())
        return
    click.echo(f"tree of {found.second} extends tree of {found.first}")
    click.echo(f"  root {found.first:>9}  {found.first_root}")
    click.echo(f"  root {found.second:>9}  {found.second_root}")
    for index, step in enumerate(found.proof, start=1):
        click.echo(f"  proof {index:>3}  {step}")


@proof.command("check")
@click.argument("proof_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--checkpoint",
    "notes",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A signed checkpoint the proof must match (repeat for a consistency proof's two).",
)
@click.option("--key", default=None, metavar="PUBLIC", help="The ledger's public key [this one's].")
@click.pass_context
def check(ctx: click.Context, proof_file: Path, notes: tuple[Path, ...], key: str | None) -> None:
    """Check PROOF_FILE (JSON from `inclusion` or `consistency`) against signed checkpoints.

    Exit status 0 when the proof holds and every checkpoint's signature, size and root match;
    non-zero, naming what failed, otherwise.

    Example: ledger proof check proof.json --checkpoint published.txt --key UA...
    """
    public = key or _own_public_key(settings_of(ctx))
    checkpoints = [open_note(_read(path), KEY_NAME, public) for path in notes]
    data = json.loads(_read(proof_file))
    if isinstance(data, dict) and "audit_path" in data:
        included = msgspec.convert(data, InclusionProof)
        for checkpoint in checkpoints:
            _matches(checkpoint, included.tree_size, included.root_hash, "tree_size")
        check_inclusion(included)
        click.echo(
            f"ok: sequence {included.leaf_index + 1} is in the tree of {included.tree_size}"
            + (" signed by the checkpoint" if checkpoints else "")
        )
        return
    consistent = msgspec.convert(data, ConsistencyProof)
    sizes = {consistent.first: consistent.first_root, consistent.second: consistent.second_root}
    for checkpoint in checkpoints:
        if checkpoint.size not in sizes:
            raise ProofError(
                f"checkpoint of size {checkpoint.size} is neither the proof's first "
                f"({consistent.first}) nor its second ({consistent.second})"
            )
        _matches(checkpoint, checkpoint.size, sizes[checkpoint.size], "size")
    check_consistency(consistent)
    click.echo(
        f"ok: the tree of {consistent.second} extends the tree of {consistent.first}"
        + (" (checkpoints signed)" if checkpoints else "")
    )


def _matches(checkpoint: Checkpoint, size: int, root: str, name: str) -> None:
    if checkpoint.size != size:
        raise ProofError(
            f"{name}: the proof is of {size} leaves, the checkpoint of {checkpoint.size}"
        )
    if checkpoint.root != base64.b64decode(root):
        raise ProofError(f"root: the proof's root of {size} leaves is not the checkpoint's")


def _own_public_key(settings: Settings) -> str:
    path = ledger_seed_path(settings.data_dir)
    if not path.exists():
        raise click.UsageError("--key: this data directory has no ledger key; give the public key")
    return public_key_of(path.read_text().strip())


def _read(path: Path) -> bytes:
    if path.stat().st_size > _MAX_FILE:
        raise click.UsageError(f"{path}: larger than {_MAX_FILE} bytes; not a proof or checkpoint")
    return path.read_bytes()


@contextlib.contextmanager
def _tree(settings: Settings) -> Iterator[TreeStore]:
    """The data directory's tree, open for reading while the ``with`` lasts."""
    stream = settings.namespace.stream
    tree = TreeStore(tree_path(settings.data_dir, stream), stream)
    try:
        yield tree
    finally:
        tree.close()
