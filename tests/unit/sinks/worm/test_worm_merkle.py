"""RFC 6962 tree hashing and proofs: known roots, and properties over random trees."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sinks.worm.errors import ProofError
from sinks.worm.merkle import (
    EMPTY_ROOT,
    TreeFrontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# The leaves of RFC 6962's reference tests (as used by transparency-dev and CT), with the
# published root of the tree over the first n of them.
RFC_LEAVES = [
    bytes.fromhex(h)
    for h in (
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
RFC_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def reference_mth(data: list[bytes]) -> bytes:
    """MTH exactly as RFC 6962 2.1 writes it, recursion and all."""
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < len(data):
        k *= 2
    return hashlib.sha256(b"\x01" + reference_mth(data[:k]) + reference_mth(data[k:])).digest()


def flip(value: bytes, bit: int) -> bytes:
    bit %= len(value) * 8
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_empty_tree_root_is_hash_of_nothing() -> None:
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert TreeFrontier().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_the_rfc_reference_tree(size: int) -> None:
    hashes = [leaf_hash(d) for d in RFC_LEAVES]
    frontier = TreeFrontier()
    for h in hashes[:size]:
        frontier.append(h)
    assert root_hash(hashes, size).hex() == RFC_ROOTS[size - 1]
    assert frontier.root().hex() == RFC_ROOTS[size - 1]


trees = st.lists(st.binary(max_size=24), min_size=1, max_size=70)


@given(trees)
def test_frontier_and_root_hash_agree_with_the_rfc_definition(data: list[bytes]) -> None:
    frontier = TreeFrontier()
    hashes = [leaf_hash(d) for d in data]
    for n, h in enumerate(hashes, start=1):
        frontier.append(h)
        assert frontier.root() == root_hash(hashes, n)
    assert frontier.root() == reference_mth(data)
    assert frontier.size == len(data)


@given(trees, st.data())
def test_every_inclusion_proof_verifies_and_any_flipped_bit_fails(
    data: list[bytes], draw: st.DataObject
) -> None:
    hashes = [leaf_hash(d) for d in data]
    size = draw.draw(st.integers(1, len(hashes)), label="size")
    index = draw.draw(st.integers(0, size - 1), label="index")
    root = root_hash(hashes, size)
    proof = inclusion_proof(hashes, index, size)
    verify_inclusion(hashes[index], index, size, proof, root)

    bit = draw.draw(st.integers(0, 255), label="bit")
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(flip(data[index] or b"\x00", bit)), index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(flip(hashes[index], bit), index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(hashes[index], index, size, proof, flip(root, bit))
    if proof:
        at = draw.draw(st.integers(0, len(proof) - 1), label="at")
        bad = [*proof[:at], flip(proof[at], bit), *proof[at + 1 :]]
        with pytest.raises(ProofError):
            verify_inclusion(hashes[index], index, size, bad, root)


@given(trees, st.data())
def test_every_consistency_proof_verifies_and_any_flipped_bit_fails(
    data: list[bytes], draw: st.DataObject
) -> None:
    hashes = [leaf_hash(d) for d in data]
    size2 = draw.draw(st.integers(1, len(hashes)), label="size2")
    size1 = draw.draw(st.integers(1, size2), label="size1")
    root1, root2 = root_hash(hashes, size1), root_hash(hashes, size2)
    proof = consistency_proof(hashes, size1, size2)
    verify_consistency(size1, size2, proof, root1, root2)

    bit = draw.draw(st.integers(0, 255), label="bit")
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, proof, flip(root1, bit), root2)
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, proof, root1, flip(root2, bit))
    if proof:
        at = draw.draw(st.integers(0, len(proof) - 1), label="at")
        bad = [*proof[:at], flip(proof[at], bit), *proof[at + 1 :]]
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, bad, root1, root2)


@given(trees, st.data())
def test_a_proof_for_one_leaf_does_not_prove_another(
    data: list[bytes], draw: st.DataObject
) -> None:
    hashes = [leaf_hash(d) for d in data]
    size = len(hashes)
    index = draw.draw(st.integers(0, size - 1), label="index")
    other = draw.draw(st.integers(0, size - 1), label="other")
    assume(data[other] != data[index])
    proof = inclusion_proof(hashes, index, size)
    with pytest.raises(ProofError):
        verify_inclusion(hashes[other], index, size, proof, root_hash(hashes))
    with pytest.raises(ProofError):
        verify_inclusion(hashes[index], other, size, proof, root_hash(hashes))


def test_a_reordered_log_has_another_root() -> None:
    hashes = [leaf_hash(bytes([i])) for i in range(10)]
    swapped = [*hashes]
    swapped[3], swapped[4] = swapped[4], swapped[3]
    assert root_hash(hashes) != root_hash(swapped)


def test_proofs_outside_the_tree_are_refused() -> None:
    hashes = [leaf_hash(bytes([i])) for i in range(5)]
    with pytest.raises(ProofError, match="no leaf 5") as caught:
        inclusion_proof(hashes, 5)
    assert caught.value.reason == "index-out-of-range"
    with pytest.raises(ProofError) as refused:
        consistency_proof(hashes, 0, 3)
    assert refused.value.reason == "size-range"
    with pytest.raises(ProofError) as empty:
        verify_consistency(0, 3, [], EMPTY_ROOT, root_hash(hashes, 3))
    assert empty.value.reason == "empty-tree"
