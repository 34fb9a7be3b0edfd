"""The Merkle tree of events.tlog against RFC 6962 itself and against published vectors.

The reference below is RFC 6962 section 2.1 written out as recursion over a list of leaf
payloads, with no stored hashes and no index arithmetic: the module's answers, built from the
flat stored-hash sequence, must equal it for every size, index and pair up to 40 leaves.

The published vectors are the eight-leaf tree of Certificate Transparency's tests, also used by
Trillian and transparency-dev/merkle (proof/verify_test.go: ``leaves``, ``roots``,
``inclusionProofs`` (whose leaf numbers count from 1), ``consistencyProofs``) and Go's
sumdb/tlog. They agree with the reference here, and the test says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.tlog import (
    EMPTY_ROOT,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    stored_hash_count,
    stored_hash_index,
    stored_hashes,
    stored_hashes_for_leaf_hash,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

# --- RFC 6962, section 2.1, as written ---------------------------------------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n])."""
    if not leaves:
        return _sha256(b"")
    if len(leaves) == 1:
        return _sha256(b"\x00" + leaves[0])
    k = _split(len(leaves))
    return _sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n])."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = _split(n)
    if m <= k:
        return [*subproof(m, leaves[:k], whole), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n])."""
    return subproof(m, leaves, True)


# --- A stored-hash sequence in memory ----------------------------------------------------------


class Store:
    """The flat stored-hash sequence, with a reader that records what it was asked."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.hashes: list[bytes] = []
        self.reads: list[list[int]] = []
        for n, data in enumerate(leaves):
            self.hashes.extend(stored_hashes(n, data, self.read))

    def read(self, positions: Sequence[int]) -> list[bytes]:
        self.reads.append(list(positions))
        return [self.hashes[position] for position in positions]


def _payloads(count: int) -> list[bytes]:
    return [f"event {i}".encode() * (i % 3) for i in range(count)]


SMALL = _payloads(40)
SMALL_STORE = Store(SMALL)
BIG = _payloads(300)
BIG_STORE = Store(BIG)


# --- Published vectors -------------------------------------------------------------------------

VECTOR_LEAVES = [
    bytes.fromhex(text)
    for text in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
VECTOR_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
EMPTY_ROOT_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
# (leaf index from 0, tree size, audit path)
VECTOR_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (first size, second size, proof)
VECTOR_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
VECTOR_STORE = Store(VECTOR_LEAVES)


def _hexes(hashes: Sequence[bytes]) -> list[str]:
    return [value.hex() for value in hashes]


def test_the_reference_agrees_with_the_published_roots() -> None:
    assert mth([]).hex() == EMPTY_ROOT_HEX
    for size, root in VECTOR_ROOTS.items():
        assert mth(VECTOR_LEAVES[:size]).hex() == root


@pytest.mark.parametrize(("size", "root"), VECTOR_ROOTS.items())
def test_tree_hash_gives_the_published_roots(size: int, root: str) -> None:
    assert tree_hash(size, VECTOR_STORE.read).hex() == root


@pytest.mark.parametrize(("index", "size", "expected"), VECTOR_INCLUSION)
def test_inclusion_proofs_are_the_published_ones(
    index: int, size: int, expected: list[str]
) -> None:
    assert _hexes(path(index, VECTOR_LEAVES[:size])) == expected  # the reference agrees

    got = inclusion_proof(index, size, VECTOR_STORE.read)

    assert _hexes(got) == expected
    root = bytes.fromhex(VECTOR_ROOTS[size])
    verify_inclusion(index, size, leaf_hash(VECTOR_LEAVES[index]), got, root)


@pytest.mark.parametrize(("first", "second", "expected"), VECTOR_CONSISTENCY)
def test_consistency_proofs_are_the_published_ones(
    first: int, second: int, expected: list[str]
) -> None:
    assert _hexes(proof(first, VECTOR_LEAVES[:second])) == expected  # the reference agrees

    got = consistency_proof(first, second, VECTOR_STORE.read)

    assert _hexes(got) == expected
    first_root = bytes.fromhex(VECTOR_ROOTS[first])
    verify_consistency(first, second, first_root, bytes.fromhex(VECTOR_ROOTS[second]), got)


# --- The stored-hash layout --------------------------------------------------------------------


def test_the_layout_of_four_leaves() -> None:
    # Appended in order: leaf 0; leaf 1 and node (0,1); leaf 2; leaf 3, node (2,3), node (0..3).
    expected = {(0, 0): 0, (0, 1): 1, (1, 0): 2, (0, 2): 3, (0, 3): 4, (1, 1): 5, (2, 0): 6}
    assert {place: stored_hash_index(*place) for place in expected} == expected
    assert [stored_hash_count(n) for n in range(5)] == [0, 1, 3, 4, 7]


def test_each_stored_hash_is_the_subtree_its_index_names() -> None:
    placed: dict[int, bytes] = {}
    for level in range(6):
        width = 1 << level
        for index in range(len(SMALL) // width):
            subtree = SMALL[index * width : (index + 1) * width]
            placed[stored_hash_index(level, index)] = mth(subtree)

    # Every stored hash has exactly one (level, index), and nothing else is stored.
    assert sorted(placed) == list(range(len(SMALL_STORE.hashes)))
    assert [placed[i] for i in range(len(placed))] == SMALL_STORE.hashes
    assert stored_hash_count(len(SMALL)) == len(SMALL_STORE.hashes)


def test_the_leaf_hash_variant_stores_the_same() -> None:
    store = Store([])
    for n, data in enumerate(SMALL[:9]):
        store.hashes.extend(stored_hashes_for_leaf_hash(n, _sha256(b"\x00" + data), store.read))
    assert store.hashes == SMALL_STORE.hashes[: stored_hash_count(9)]


def test_hashing_is_rfc_6962s() -> None:
    assert leaf_hash(b"abc") == _sha256(b"\x00abc")
    assert node_hash(b"l" * 32, b"r" * 32) == _sha256(b"\x01" + b"l" * 32 + b"r" * 32)


# --- Against the reference, exhaustively -------------------------------------------------------


@pytest.mark.parametrize("size", range(1, len(SMALL) + 1))
def test_roots_and_proofs_equal_the_reference(size: int) -> None:
    leaves = SMALL[:size]
    assert tree_hash(size, SMALL_STORE.read) == mth(leaves)
    for index in range(size):
        assert inclusion_proof(index, size, SMALL_STORE.read) == path(index, leaves)
    for first in range(1, size + 1):
        assert consistency_proof(first, size, SMALL_STORE.read) == proof(first, leaves)


@pytest.mark.parametrize("size", range(1, len(SMALL) + 1))
def test_each_answer_takes_one_read_of_logarithmically_many_hashes(size: int) -> None:
    bound = 2 * size.bit_length()
    calls = [
        lambda: tree_hash(size, SMALL_STORE.read),
        *(lambda i=i: inclusion_proof(i, size, SMALL_STORE.read) for i in range(size)),
        *(lambda f=f: consistency_proof(f, size, SMALL_STORE.read) for f in range(1, size + 1)),
    ]
    for call in calls:
        SMALL_STORE.reads.clear()
        call()
        assert len(SMALL_STORE.reads) <= 1
        assert all(len(positions) <= bound for positions in SMALL_STORE.reads)


def test_appending_reads_once_and_only_the_hashes_before_the_leaf() -> None:
    for n in range(len(SMALL)):
        store = Store(SMALL[:n])
        store.reads.clear()
        stored_hashes(n, SMALL[n], store.read)
        assert len(store.reads) <= 1
        assert all(p < stored_hash_count(n) for positions in store.reads for p in positions)


# --- Edges -------------------------------------------------------------------------------------


def test_the_empty_tree() -> None:
    assert EMPTY_ROOT.hex() == EMPTY_ROOT_HEX
    assert tree_hash(0, SMALL_STORE.read) == EMPTY_ROOT
    assert stored_hash_count(0) == 0


def test_a_tree_of_one_leaf_has_empty_proofs() -> None:
    root = tree_hash(1, SMALL_STORE.read)
    assert root == leaf_hash(SMALL[0])
    assert inclusion_proof(0, 1, SMALL_STORE.read) == []
    assert consistency_proof(1, 1, SMALL_STORE.read) == []
    verify_inclusion(0, 1, root, [], root)
    verify_consistency(1, 1, root, root, [])


def test_the_last_leaf_and_equal_sizes() -> None:
    for size in (2, 7, 16, 33):
        root = mth(SMALL[:size])
        last = inclusion_proof(size - 1, size, SMALL_STORE.read)
        verify_inclusion(size - 1, size, leaf_hash(SMALL[size - 1]), last, root)
        assert consistency_proof(size, size, SMALL_STORE.read) == []
        verify_consistency(size, size, root, root, [])


@pytest.mark.parametrize(("index", "size"), [(0, 0), (3, 3), (4, 3), (-1, 3)])
def test_an_inclusion_proof_of_no_leaf_is_refused(index: int, size: int) -> None:
    with pytest.raises(ValueError, match=f"no leaf {index} in a tree of size {size}"):
        inclusion_proof(index, size, SMALL_STORE.read)


@pytest.mark.parametrize(("first", "second"), [(0, 0), (0, 5), (6, 5), (-1, 5)])
def test_a_consistency_proof_between_impossible_sizes_is_refused(first: int, second: int) -> None:
    with pytest.raises(ValueError, match="1 <= first <= second"):
        consistency_proof(first, second, SMALL_STORE.read)


def test_negative_counts_are_refused() -> None:
    for call in (
        lambda: tree_hash(-1, SMALL_STORE.read),
        lambda: stored_hash_count(-1),
        lambda: stored_hash_index(-1, 0),
        lambda: stored_hash_index(0, -1),
        lambda: stored_hashes(-1, b"", SMALL_STORE.read),
    ):
        with pytest.raises(ValueError, match="must be at least 0"):
            call()


def test_a_leaf_hash_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="a leaf hash is 32 bytes"):
        stored_hashes_for_leaf_hash(0, b"short", SMALL_STORE.read)


def test_a_reader_that_answers_short_is_caught() -> None:
    with pytest.raises(ValueError, match="asked for 2 stored hashes, got 1"):
        tree_hash(3, lambda positions: [b"\x00" * 32])
    with pytest.raises(ValueError, match="is 3 bytes"):
        tree_hash(2, lambda positions: [b"abc"])


def test_verifying_impossible_arguments_raises_proof_error() -> None:
    root = mth(SMALL[:4])
    leaf = leaf_hash(SMALL[0])
    with pytest.raises(ProofError, match="inclusion proof of leaf 4 in tree of size 4"):
        verify_inclusion(4, 4, leaf, [], root)
    with pytest.raises(ProofError, match="inclusion proof of leaf 0 in tree of size 0"):
        verify_inclusion(0, 0, leaf, [], EMPTY_ROOT)
    with pytest.raises(ProofError, match="from tree size 0 to 4"):
        verify_consistency(0, 4, EMPTY_ROOT, root, [])
    with pytest.raises(ProofError, match="from tree size 5 to 4"):
        verify_consistency(5, 4, root, root, [])


def test_verifying_hashes_of_the_wrong_size_names_them() -> None:
    root = mth(SMALL[:4])
    good = inclusion_proof(1, 4, SMALL_STORE.read)
    with pytest.raises(ProofError, match="leaf is 31 bytes, not 32"):
        verify_inclusion(1, 4, b"x" * 31, good, root)
    with pytest.raises(ProofError, match="root is 0 bytes"):
        verify_inclusion(1, 4, leaf_hash(SMALL[1]), good, b"")
    with pytest.raises(ProofError, match="hash 1 of the proof is 33 bytes"):
        verify_inclusion(1, 4, leaf_hash(SMALL[1]), [good[0], good[1] + b"x"], root)
    with pytest.raises(ProofError, match="second_root is 3 bytes"):
        verify_consistency(2, 4, mth(SMALL[:2]), b"abc", [])


def test_failures_say_what_failed() -> None:
    root = mth(SMALL[:7])
    good = inclusion_proof(3, 7, SMALL_STORE.read)
    leaf = leaf_hash(SMALL[3])
    with pytest.raises(
        ProofError, match=r"^inclusion proof of leaf 3 in tree of size 7 does not lead to the root$"
    ):
        verify_inclusion(3, 7, leaf, good, mth(SMALL[:6]))
    with pytest.raises(ProofError, match="has fewer hashes"):
        verify_inclusion(3, 7, leaf, good[:-1], root)
    with pytest.raises(ProofError, match="has more hashes"):
        verify_inclusion(3, 7, leaf, [*good, root], root)

    first, second = mth(SMALL[:3]), root
    consistent = consistency_proof(3, 7, SMALL_STORE.read)
    with pytest.raises(ProofError, match="from tree size 3 to 7 is empty"):
        verify_consistency(3, 7, first, second, [])
    with pytest.raises(ProofError, match="does not lead to the first root"):
        verify_consistency(3, 7, mth(SMALL[:2]), second, consistent)
    with pytest.raises(ProofError, match="does not lead to the second root"):
        verify_consistency(3, 7, first, mth(SMALL[:8]), consistent)
    with pytest.raises(ProofError, match="must be empty, as the sizes are equal"):
        verify_consistency(7, 7, root, root, consistent)
    with pytest.raises(ProofError, match="trees of equal size have different roots"):
        verify_consistency(7, 7, root, first, [])


# --- Every proof verifies; every change to it does not ----------------------------------------


def _flipped(value: bytes, bit: int) -> bytes:
    changed = bytearray(value)
    changed[bit // 8 % len(value)] ^= 1 << (bit % 8)
    return bytes(changed)


def _tampered(hashes: list[bytes], bit: int, extra: bytes) -> list[list[bytes]]:
    """Each hash with one bit flipped, the proof without each hash, and with one more."""
    variants = [[*hashes[:i], _flipped(h, bit), *hashes[i + 1 :]] for i, h in enumerate(hashes)]
    variants += [hashes[:i] + hashes[i + 1 :] for i in range(len(hashes))]
    variants += [[*hashes[:i], extra, *hashes[i:]] for i in range(len(hashes) + 1)]
    return variants


@settings(max_examples=150, deadline=None)
@given(data=st.data(), bit=st.integers(0, 255))
def test_inclusion_proofs_verify_and_tampering_fails(data: st.DataObject, bit: int) -> None:
    size = data.draw(st.integers(1, len(BIG)), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    root = mth(BIG[:size])
    leaf = leaf_hash(BIG[index])
    audit = inclusion_proof(index, size, BIG_STORE.read)

    verify_inclusion(index, size, leaf, audit, root)

    with pytest.raises(ProofError):
        verify_inclusion(index, size, _flipped(leaf, bit), audit, root)
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf, audit, _flipped(root, bit))
    for variant in _tampered(audit, bit, extra=leaf):
        with pytest.raises(ProofError):
            verify_inclusion(index, size, leaf, variant, root)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), bit=st.integers(0, 255))
def test_consistency_proofs_verify_and_tampering_fails(data: st.DataObject, bit: int) -> None:
    second = data.draw(st.integers(1, len(BIG)), label="second")
    first = data.draw(st.integers(1, second), label="first")
    first_root, second_root = mth(BIG[:first]), mth(BIG[:second])
    consistent = consistency_proof(first, second, BIG_STORE.read)

    verify_consistency(first, second, first_root, second_root, consistent)

    with pytest.raises(ProofError):
        verify_consistency(first, second, _flipped(first_root, bit), second_root, consistent)
    with pytest.raises(ProofError):
        verify_consistency(first, second, first_root, _flipped(second_root, bit), consistent)
    for variant in _tampered(consistent, bit, extra=first_root):
        with pytest.raises(ProofError):
            verify_consistency(first, second, first_root, second_root, variant)
