"""Signed checkpoints (events.checkpoint) against the C2SP formats, signed here by hand.

Expected bytes come from the specs or from this test's own arithmetic: notes are signed below
with PyNaCl directly and key IDs computed from their definition, never by the module under test.
One note is the real thing: a tree head of the Go checksum database, signed by sum.golang.org.
"""

from __future__ import annotations

import base64
import hashlib
import os

import nacl.signing
import nkeys
import pytest

from events.checkpoint import (
    MAX_NOTE_BYTES,
    Checkpoint,
    CheckpointError,
    body,
    open_note,
    parse_body,
    sign,
)
from events.signing import new_key_pair, public_key_of

NAME = "ledger.example.org/activities"
ROOT = hashlib.sha256(b"some root").digest()
CHECKPOINT = Checkpoint(NAME, 1234, ROOT)
EM_DASH = "\u2014"


class Key:
    """An Ed25519 key as the test knows it: raw bytes, and the nkey spellings of the ledger."""

    def __init__(self, raw_seed: bytes | None = None) -> None:
        self.signing = nacl.signing.SigningKey(raw_seed or os.urandom(32))
        self.raw_public = self.signing.verify_key.encode()
        self.seed = nkeys.encode_seed(self.signing.encode(), nkeys.PREFIX_BYTE_USER).decode()
        self.public = _user_nkey(self.raw_public)

    def key_id(self, name: str) -> bytes:
        # c2sp.org/signed-note: SHA-256(key name || 0x0A || 0x01 || public key)[:4]
        return hashlib.sha256(name.encode() + b"\n" + b"\x01" + self.raw_public).digest()[:4]

    def line(self, text: str, name: str = NAME) -> str:
        signature = self.signing.sign(text.encode()).signature
        return f"{EM_DASH} {name} {base64.b64encode(self.key_id(name) + signature).decode()}\n"


def _user_nkey(raw_public: bytes) -> str:
    # base32 of: the user prefix byte, the key, the CRC-16 of both (little-endian).
    payload = bytes([nkeys.PREFIX_BYTE_USER]) + raw_public
    return base64.b32encode(payload + nkeys.crc16_checksum(payload)).decode().rstrip("=")


KEY = Key()
OTHER = Key()


def _note(text: str, *lines: str) -> str:
    return text + "\n" + "".join(lines)


# --- The body ----------------------------------------------------------------------------------


def test_the_body_is_the_three_lines_of_c2sp() -> None:
    # The example of c2sp.org/tlog-checkpoint.
    root = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    checkpoint = Checkpoint("example.com/behind-the-sofa", 20852163, root)

    text = body(checkpoint)

    assert text == (
        b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )
    assert parse_body(text) == checkpoint


def test_an_empty_tree_has_size_zero() -> None:
    empty = Checkpoint(NAME, 0, hashlib.sha256(b"").digest())
    assert body(empty).split(b"\n")[1] == b"0"
    assert parse_body(body(empty)) == empty


@pytest.mark.parametrize(
    ("checkpoint", "message"),
    [
        (Checkpoint("", 1, ROOT), "origin .* is empty"),
        (Checkpoint("a\nb", 1, ROOT), "origin contains a newline"),
        (Checkpoint("a\tb", 1, ROOT), "origin contains a control character"),
        (Checkpoint(NAME, -1, ROOT), "size -1 is not between 0 and 2\\*\\*64 - 1"),
        (Checkpoint(NAME, 2**64, ROOT), "is not between 0 and 2\\*\\*64 - 1"),
        (Checkpoint(NAME, 1, ROOT[:31]), "root .* is 31 bytes"),
    ],
)
def test_a_checkpoint_that_cannot_be_written_is_refused(
    checkpoint: Checkpoint, message: str
) -> None:
    with pytest.raises(CheckpointError, match=message):
        body(checkpoint)


# --- Signing and opening -----------------------------------------------------------------------


def test_a_signed_note_opens_to_its_checkpoint() -> None:
    seed, public = new_key_pair()

    note = sign(CHECKPOINT, NAME, seed)

    assert open_note(note, NAME, public) == CHECKPOINT
    assert open_note(note.encode(), NAME, public) == CHECKPOINT


def test_the_note_is_the_body_a_blank_line_and_a_c2sp_signature_line() -> None:
    note = sign(CHECKPOINT, NAME, KEY.seed)

    text = body(CHECKPOINT).decode()
    assert note.startswith(text + "\n" + EM_DASH + " " + NAME + " ")
    assert note.encode()[len(text) + 1 :].startswith(b"\xe2\x80\x94 ")
    assert note.endswith("\n") and note.count("\n") == text.count("\n") + 2
    signature = base64.b64decode(note.rstrip("\n").rsplit(" ", 1)[1], validate=True)
    assert len(signature) == 4 + 64
    assert signature[:4] == KEY.key_id(NAME)
    KEY.signing.verify_key.verify(text.encode(), signature[4:])  # raises if it does not hold


def test_the_key_id_binds_the_key_name() -> None:
    note = sign(CHECKPOINT, "another.example/name", KEY.seed)
    signature = base64.b64decode(note.rstrip("\n").rsplit(" ", 1)[1])
    assert signature[:4] == KEY.key_id("another.example/name") != KEY.key_id(NAME)
    with pytest.raises(CheckpointError, match="no signature by key"):
        open_note(note.replace("another.example/name", NAME), NAME, KEY.public)


def test_the_test_key_is_the_ledgers_nkey() -> None:
    assert public_key_of(KEY.seed) == KEY.public


def test_a_note_signed_by_hand_opens() -> None:
    text = body(CHECKPOINT).decode()
    assert open_note(_note(text, KEY.line(text)), NAME, KEY.public) == CHECKPOINT


def test_a_checkpoint_of_the_go_checksum_database_opens() -> None:
    # A tree head served by sum.golang.org, quoted in a public write-up. The verifier key is the
    # one built into the go command (src/cmd/go/internal/modfetch/key.go):
    # sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8 (type byte 0x01, key).
    raw_public = base64.b64decode("Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8")[1:]
    note = (
        "go.sum database tree\n"
        "15368405\n"
        "/g9am3I6YWNKaZX/jkne1fqd9zEyjss+JXyPXG0WfkY=\n"
        "\n"
        f"{EM_DASH} sum.golang.org Az3grqJGUaSGukG9p8nI2vKgiFn7qGHxn0W+mrwyI6Gz3F0t1J3LzmWk/p96Y"
        "bf295EjwdSwlzgijq5WA9d1Ded7owM=\n"
    )
    key_id = hashlib.sha256(b"sum.golang.org\n\x01" + raw_public).digest()[:4]
    assert key_id.hex() == "033de0ae"

    checkpoint = open_note(note, "sum.golang.org", _user_nkey(raw_public))

    assert checkpoint == Checkpoint(
        "go.sum database tree",
        15368405,
        base64.b64decode("/g9am3I6YWNKaZX/jkne1fqd9zEyjss+JXyPXG0WfkY="),
    )
    with pytest.raises(CheckpointError, match="does not verify"):
        open_note(note.replace("15368405", "15368406"), "sum.golang.org", _user_nkey(raw_public))


@pytest.mark.parametrize(
    "tampered",
    [
        Checkpoint(NAME, 1235, ROOT),
        Checkpoint(NAME, 1234, hashlib.sha256(b"another root").digest()),
        Checkpoint("ledger.example.org/other", 1234, ROOT),
    ],
    ids=["size", "root", "origin"],
)
def test_a_tampered_body_fails(tampered: Checkpoint) -> None:
    note = sign(CHECKPOINT, NAME, KEY.seed)
    forged = note.replace(body(CHECKPOINT).decode(), body(tampered).decode())
    assert forged != note

    with pytest.raises(CheckpointError, match=f"the signature by key '{NAME}' does not verify"):
        open_note(forged, NAME, KEY.public)


def test_a_note_signed_by_another_key_fails_naming_the_key() -> None:
    note = sign(CHECKPOINT, NAME, OTHER.seed)

    with pytest.raises(CheckpointError) as raised:
        open_note(note, NAME, KEY.public)

    assert str(raised.value) == (
        f"note has no signature by key '{NAME}' (ID {KEY.key_id(NAME).hex()})"
    )


def test_a_signature_under_the_right_key_id_by_another_key_fails() -> None:
    text = body(CHECKPOINT).decode()
    forged = OTHER.signing.sign(text.encode()).signature
    line = f"{EM_DASH} {NAME} {base64.b64encode(KEY.key_id(NAME) + forged).decode()}\n"

    with pytest.raises(CheckpointError, match="does not verify"):
        open_note(_note(text, line), NAME, KEY.public)


def test_signatures_of_other_keys_are_ignored() -> None:
    text = body(CHECKPOINT).decode()
    # Another key under the same name, another name, and a longer signature of another type.
    foreign = f"{EM_DASH} witness.example/w1 {base64.b64encode(os.urandom(4 + 2420)).decode()}\n"
    note = _note(
        text,
        OTHER.line(text),
        OTHER.line(text, "witness.example/w2"),
        KEY.line(text),
        foreign,
    )

    assert open_note(note, NAME, KEY.public) == CHECKPOINT


def test_the_first_signature_of_the_key_decides() -> None:
    text = body(CHECKPOINT).decode()
    bad = f"{EM_DASH} {NAME} {base64.b64encode(KEY.key_id(NAME) + bytes(64)).decode()}\n"

    assert open_note(_note(text, KEY.line(text), bad), NAME, KEY.public) == CHECKPOINT
    with pytest.raises(CheckpointError, match="does not verify"):
        open_note(_note(text, bad, KEY.line(text)), NAME, KEY.public)


# --- Malformed notes ---------------------------------------------------------------------------

GOOD_TEXT = body(CHECKPOINT).decode()
GOOD_LINE = KEY.line(GOOD_TEXT)


def _stray_bits(root: bytes) -> str:
    """``root`` in base64 with a padding bit set: it decodes to the same bytes."""
    text = base64.b64encode(root).decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet[alphabet.index(text[-2]) ^ 1]  # 32 bytes: the last character has 2 spare bits
    stray = text[:-2] + last + "="
    assert base64.b64decode(stray) == root and stray != text
    return stray


def _signed(text: str) -> str:
    """A note of any text, well signed by KEY: what is wrong with it is the text itself."""
    return _note(text, KEY.line(text))


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (GOOD_TEXT + GOOD_LINE, "no blank line between its text and its signatures"),
        (GOOD_TEXT + "\n", "no signature line after its blank line"),
        (_note(GOOD_TEXT, GOOD_LINE.rstrip("\n")), "last line of the note does not end"),
        (_note(GOOD_TEXT, "-- " + GOOD_LINE[2:]), "line 5 of the note is not a signature line"),
        (_note(GOOD_TEXT, GOOD_LINE, "just text\n"), "line 6 of the note is not a signature"),
        (_note(GOOD_TEXT, f"{EM_DASH}  abc\n"), "line 5 of the note has no valid key name"),
        (_note(GOOD_TEXT, f"{EM_DASH} a+b abcd\n"), "line 5 of the note has no valid key name"),
        (_note(GOOD_TEXT, f"{EM_DASH} name ab!d\n"), "line 5 .* the signature is not base64"),
        (_note(GOOD_TEXT, f"{EM_DASH} name abc\n"), "line 5 .* the signature is not base64"),
        (_note(GOOD_TEXT, f"{EM_DASH} name AAAAAA==\n"), "line 5 .* the signature is too short"),
        (_note(GOOD_TEXT, GOOD_LINE, "\n"), "no signature line after its blank line"),
        (_note(GOOD_TEXT.replace("1234", "12\r34"), GOOD_LINE), "line 2 .* character U\\+000D"),
        (_signed(GOOD_TEXT + "an extension\n"), "body has 4 lines; it must have 3"),
        (_signed(NAME + "\n1234\n"), "body has 2 lines"),
        (_signed(f"{NAME}\n01234\n{GOOD_TEXT.split()[2]}\n"), "size \\(line 2\\) '01234' is not"),
        (_signed(f"{NAME}\n-1\n{GOOD_TEXT.split()[2]}\n"), "size \\(line 2\\) '-1' is not"),
        (_signed(f"{NAME}\n\u0661\n{GOOD_TEXT.split()[2]}\n"), "size \\(line 2\\)"),
        (_signed(f"{NAME}\n{2**64}\n{GOOD_TEXT.split()[2]}\n"), "larger than 2\\*\\*64 - 1"),
        (_signed(f"{NAME}\n{'9' * 500}\n{GOOD_TEXT.split()[2]}\n"), "is not a decimal number"),
        (_signed(f"{NAME}\n1234\nnot base64!\n"), "root \\(line 3\\) is not base64"),
        (_signed(f"{NAME}\n1234\n{base64.b64encode(ROOT[:31]).decode()}\n"), "is 31 bytes"),
        (_signed(f"{NAME}\n1234\n{_stray_bits(ROOT)}\n"), "not canonical base64"),
        (_signed(f"{NAME}\n1234\n{base64.b64encode(ROOT).decode().rstrip('=')}\n"), "base64"),
        (_signed(f"\n1234\n{base64.b64encode(ROOT).decode()}\n"), "origin \\(line 1\\) is empty"),
    ],
)
def test_a_malformed_note_fails_naming_the_problem(note: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        open_note(note, NAME, KEY.public)


def test_a_note_that_is_not_utf8_fails() -> None:
    note = _note(GOOD_TEXT, GOOD_LINE).encode().replace(b"1234", b"12\xff4")
    with pytest.raises(CheckpointError, match="not UTF-8"):
        open_note(note, NAME, KEY.public)
    with pytest.raises(CheckpointError, match="not UTF-8"):
        parse_body(b"\xff\n1\n" + base64.b64encode(ROOT) + b"\n")


def test_parse_body_needs_a_final_newline() -> None:
    with pytest.raises(CheckpointError, match="does not end in a newline"):
        parse_body(body(CHECKPOINT)[:-1])


def test_an_oversize_note_is_refused_before_it_is_read() -> None:
    text = body(CHECKPOINT).decode()
    filler = f"{EM_DASH} filler.example/x {base64.b64encode(bytes(1000)).decode()}\n"
    note = _note(text, KEY.line(text))
    while len(note.encode()) + len(filler.encode()) <= MAX_NOTE_BYTES:
        note += filler
    assert open_note(note, NAME, KEY.public) == CHECKPOINT  # at most the limit: read

    longer = note + filler
    assert len(longer.encode()) > MAX_NOTE_BYTES
    with pytest.raises(CheckpointError, match=f"larger than {MAX_NOTE_BYTES} bytes"):
        open_note(longer, NAME, KEY.public)
    with pytest.raises(CheckpointError, match="larger than"):
        open_note(longer.encode(), NAME, KEY.public)


def test_a_note_of_multibyte_characters_is_measured_in_bytes() -> None:
    # Fewer characters than the limit, more bytes: each em dash is three bytes.
    note = _note(GOOD_TEXT, GOOD_LINE) + f"{EM_DASH} x AAAAAAAA\n" * 4700
    assert len(note) <= MAX_NOTE_BYTES < len(note.encode())
    with pytest.raises(CheckpointError, match="larger than"):
        open_note(note, NAME, KEY.public)


@pytest.mark.parametrize("name", ["", "has space", "a+b", "tab\there", "nbsp\u00a0name"])
def test_an_invalid_key_name_is_refused(name: str) -> None:
    with pytest.raises(CheckpointError, match=r"key name .* is not valid"):
        sign(CHECKPOINT, name, KEY.seed)
    with pytest.raises(CheckpointError, match=r"key name .* is not valid"):
        open_note(sign(CHECKPOINT, NAME, KEY.seed), name, KEY.public)


def test_a_public_key_that_is_not_a_user_nkey_is_refused() -> None:
    note = sign(CHECKPOINT, NAME, KEY.seed)
    account = nkeys.from_seed(
        nkeys.encode_seed(bytes(32), nkeys.PREFIX_BYTE_ACCOUNT)
    ).public_key.decode()
    for public in ("not a key", account, KEY.public[:-1] + ("A" if KEY.public[-1] != "A" else "B")):
        with pytest.raises(CheckpointError, match="is not a user nkey"):
            open_note(note, NAME, public)
