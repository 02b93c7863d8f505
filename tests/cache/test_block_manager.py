"""Block manager: reference counts, prefix-cache hits on identical prefixes only, LRU reuse.

Hand-checkable setting: blocks of 4 tokens.

    prompt A = [1 2 3 4 | 5 6 7 8 | 9]        full blocks: h(1234), h(1234 5678)
    prompt B = [1 2 3 4 | 5 6 7 0]            shares only the first block with A
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pyengine.cache import BlockManager


def test_hash_chain_depends_on_everything_before():
    m = BlockManager(8, 4)
    a = m.block_hashes([1, 2, 3, 4, 5, 6, 7, 8, 9], None)
    b = m.block_hashes([1, 2, 3, 4, 5, 6, 7, 0], None)
    c = m.block_hashes([0, 2, 3, 4, 5, 6, 7, 8], None)
    assert len(a) == 2 and a[0] == b[0] and a[1] != b[1]
    assert c[1] != a[1]  # same second block, different first: different chain


def test_salt_separates_caches():
    m = BlockManager(8, 4)
    assert m.block_hashes([1, 2, 3, 4], "alice") != m.block_hashes([1, 2, 3, 4], "bob")
    assert m.block_hashes([1, 2, 3, 4], None) != m.block_hashes([1, 2, 3, 4], "alice")


def test_freed_blocks_stay_cached_until_reused_lru():
    m = BlockManager(3, 4)
    hashes = m.block_hashes([1, 2, 3, 4, 5, 6, 7, 8], None)
    blocks = m.allocate(2)
    for block, h in zip(blocks, hashes):
        m.register(block, h)
    m.free(blocks)
    assert m.num_free_blocks == 3
    assert m.lookup_prefix(hashes, 2) == blocks  # a later request finds both
    # Allocating one block reuses the never-used block first, then the *last* block of the
    # freed sequence (freed in reverse), keeping the shared start of the prompt longest.
    [fresh] = m.allocate(1)
    assert fresh not in blocks
    [evicted] = m.allocate(1)
    assert evicted == blocks[1]
    assert m.lookup_prefix(hashes, 2) == [blocks[0]]


def test_take_revives_a_free_cached_block():
    m = BlockManager(2, 4)
    [block] = m.allocate(1)
    h = m.block_hashes([1, 2, 3, 4], None)
    m.register(block, h[0])
    m.free([block])
    assert m.num_free_blocks == 2
    m.take(m.lookup_prefix(h, 1))
    assert m.num_free_blocks == 1 and m.ref_counts[block] == 1


def test_disabled_prefix_caching_never_hits():
    m = BlockManager(2, 4, enable_prefix_caching=False)
    [block] = m.allocate(1)
    h = m.block_hashes([1, 2, 3, 4], None)
    m.register(block, h[0])
    assert m.lookup_prefix(h, 1) == []


class BlockManagerMachine(RuleBasedStateMachine):
    """Random sequences of allocate / share / register / free never leak or double-free a block,
    and a prefix hit only ever returns a block registered for exactly that hash."""

    def __init__(self):
        super().__init__()
        self.m = BlockManager(6, 2)
        self.owners: list[list[int]] = []  # each owner holds one reference to each of its blocks
        self.content: dict[int, bytes] = {}  # block -> hash it was registered with

    @rule(n=st.integers(1, 3))
    def allocate(self, n):
        if self.m.can_allocate(n):
            blocks = self.m.allocate(n)
            for b in blocks:
                self.content.pop(b, None)  # reallocation forgets old content
            self.owners.append(blocks)

    @precondition(lambda self: self.owners)
    @rule(data=st.data())
    def share(self, data):
        owner = data.draw(st.sampled_from(self.owners))
        self.m.take(owner)
        self.owners.append(list(owner))

    @precondition(lambda self: self.owners)
    @rule(data=st.data(), tokens=st.lists(st.integers(0, 3), min_size=2, max_size=2))
    def register(self, data, tokens):
        owner = data.draw(st.sampled_from(self.owners))
        h = self.m.block_hashes(tokens, None)[0]
        if h not in self.m.cached:
            self.m.register(owner[0], h)
            self.content[owner[0]] = h

    @precondition(lambda self: self.owners)
    @rule(data=st.data())
    def free(self, data):
        owner = data.draw(st.sampled_from(self.owners))
        self.owners.remove(owner)
        self.m.free(owner)

    @rule(tokens=st.lists(st.integers(0, 3), min_size=2, max_size=2))
    def lookup(self, tokens):
        h = self.m.block_hashes(tokens, None)[0]
        for block in self.m.lookup_prefix([h], 1):
            assert self.content.get(block) == h

    @invariant()
    def counts_add_up(self):
        expected = [0] * self.m.num_blocks
        for owner in self.owners:
            for b in owner:
                expected[b] += 1
        assert self.m.ref_counts == expected
        assert self.m.num_free_blocks == sum(1 for c in expected if c == 0)


TestBlockManagerMachine = BlockManagerMachine.TestCase
TestBlockManagerMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
