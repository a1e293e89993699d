"""RFC 6962 Merkle tree hashing, inclusion and consistency proofs: pure functions, no I/O.

Hashing follows RFC 6962 section 2.1: a leaf is `SHA-256(0x00 ‖ d)`, an interior node
`SHA-256(0x01 ‖ left ‖ right)`, and the tree over n leaves splits at the largest power of
two below n, so trees of any size have one well-defined root (MTH). Proofs are generated
by the RFC's PATH and PROOF definitions and verified with the iterative algorithms of
RFC 9162 sections 2.1.3.2 and 2.1.4.2, which never build the tree.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from sinks.worm.errors import ProofError

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """The hash of one log entry: SHA-256(0x00 ‖ data)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2): where RFC 6962 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(leaf_hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH of leaf_hashes[lo:hi] (hi > lo)."""
    n = hi - lo
    if n & (n - 1) == 0:
        # A perfect subtree: hashing level by level avoids a Python call per node.
        level = list(leaf_hashes[lo:hi])
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        return level[0]
    k = _split(n)
    return node_hash(_subtree_root(leaf_hashes, lo, lo + k), _subtree_root(leaf_hashes, lo + k, hi))


def root_hash(leaf_hashes: Sequence[bytes], size: int | None = None) -> bytes:
    """MTH of the first `size` leaf hashes (default all); the empty tree's is SHA-256("")."""
    size = len(leaf_hashes) if size is None else size
    if not 0 <= size <= len(leaf_hashes):
        raise ProofError(f"tree size {size} outside 0..{len(leaf_hashes)}", reason="size-range")
    if size == 0:
        return EMPTY_ROOT
    return _subtree_root(leaf_hashes, 0, size)


class TreeFrontier:
    """The right edge of a growing tree: one root per perfect subtree, O(log n) memory.

    Appending a leaf and asking for the root both cost O(log n) hashes, so the writer can
    seal a checkpoint at any size without re-reading the log.
    """

    __slots__ = ("_peaks", "_size")

    def __init__(self) -> None:
        # Roots of the perfect subtrees n decomposes into, largest (leftmost) first.
        self._peaks: list[bytes] = []
        self._size = 0

    @property
    def size(self) -> int:
        return self._size

    def append(self, hashed_leaf: bytes) -> None:
        """Add the next leaf (its leaf hash, not its data)."""
        node = hashed_leaf
        carry = self._size
        while carry & 1:
            node = node_hash(self._peaks.pop(), node)
            carry >>= 1
        self._peaks.append(node)
        self._size += 1

    def root(self) -> bytes:
        """MTH of every leaf appended so far."""
        if not self._peaks:
            return EMPTY_ROOT
        root = self._peaks[-1]
        for peak in reversed(self._peaks[:-1]):
            root = node_hash(peak, root)
        return root


def inclusion_proof(
    leaf_hashes: Sequence[bytes], index: int, size: int | None = None
) -> list[bytes]:
    """The audit path (RFC 6962 PATH) of leaf `index` in the tree of the first `size` leaves."""
    size = len(leaf_hashes) if size is None else size
    if not 0 <= index < size <= len(leaf_hashes):
        raise ProofError(
            f"no leaf {index} in a tree of {size} (log holds {len(leaf_hashes)})",
            reason="index-out-of-range",
        )
    proof: list[bytes] = []
    lo, hi = 0, size
    # Walk from the root down to the leaf, collecting the sibling at each split;
    # the RFC lists siblings leaf-first, hence the reversal at the end.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            proof.append(_subtree_root(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_subtree_root(leaf_hashes, lo, lo + k))
            lo = lo + k
    proof.reverse()
    return proof


def consistency_proof(leaf_hashes: Sequence[bytes], size1: int, size2: int) -> list[bytes]:
    """The proof (RFC 6962 PROOF) that the tree of size1 leaves is a prefix of the one of size2."""
    if not 0 < size1 <= size2 <= len(leaf_hashes):
        raise ProofError(
            f"no consistency proof from {size1} to {size2} (log holds {len(leaf_hashes)})",
            reason="size-range",
        )
    proof: list[bytes] = []
    lo, hi, m, complete = 0, size2, size1, True
    # SUBPROOF(m, D[lo:hi], complete), unrolled; like PATH it collects root-first.
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(_subtree_root(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_subtree_root(leaf_hashes, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        proof.append(_subtree_root(leaf_hashes, lo, hi))
    proof.reverse()
    return proof


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}", reason="bad-hash-length")


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def root_from_inclusion_proof(
    hashed_leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2); ProofError if it is malformed."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of {size}", reason="index-out-of-range")
    _check_hash(hashed_leaf, "leaf hash")
    fn, sn, node = index, size - 1, hashed_leaf
    for position, sibling in enumerate(proof):
        _check_hash(sibling, f"proof[{position}]")
        if sn == 0:
            raise ProofError(f"proof has {len(proof)} hashes, too many", reason="proof-too-long")
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            # Skip the levels where this node is a left child with no right sibling.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"proof has {len(proof)} hashes, too few", reason="proof-too-short")
    return node


def verify_inclusion(
    hashed_leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Return if `proof` puts this leaf hash at `index` in the tree; ProofError if not."""
    computed = root_from_inclusion_proof(hashed_leaf, index, size, proof)
    if not _same(computed, root):
        raise ProofError(
            f"inclusion proof for leaf {index} leads to another root than the tree of {size}",
            reason="root-mismatch",
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Return if `proof` shows tree (size1, root1) is a prefix of (size2, root2); ProofError if not.

    RFC 6962 defines consistency proofs for 0 < size1 <= size2 only: every tree extends
    the empty one, so a proof from size 0 would prove nothing and is refused.
    """
    if size1 > size2:
        raise ProofError(f"size1 {size1} is larger than size2 {size2}", reason="size-order")
    if size1 <= 0:
        raise ProofError(
            "a consistency proof from the empty tree proves nothing", reason="empty-tree"
        )
    if size1 == size2:
        if proof:
            raise ProofError("equal sizes need an empty proof", reason="proof-too-long")
        if not _same(root1, root2):
            raise ProofError(f"two different roots for tree size {size1}", reason="root-mismatch")
        return
    if not proof:
        raise ProofError("an empty proof cannot link two different sizes", reason="proof-too-short")
    for position, node in enumerate(proof):
        _check_hash(node, f"proof[{position}]")

    path = list(proof)
    if size1 & (size1 - 1) == 0:
        # The old tree is a perfect subtree of the new one, so the proof leaves out its root.
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    old_root = new_root = path[0]
    for node in path[1:]:
        if sn == 0:
            raise ProofError(f"proof has {len(proof)} hashes, too many", reason="proof-too-long")
        if fn & 1 or fn == sn:
            old_root = node_hash(node, old_root)
            new_root = node_hash(node, new_root)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            new_root = node_hash(new_root, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"proof has {len(proof)} hashes, too few", reason="proof-too-short")
    if not _same(old_root, root1):
        raise ProofError(f"proof does not lead to the root of size {size1}", reason="root-mismatch")
    if not _same(new_root, root2):
        raise ProofError(f"proof does not lead to the root of size {size2}", reason="root-mismatch")
