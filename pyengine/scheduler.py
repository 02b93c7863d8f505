"""The scheduler: which sequences run this step, with how many tokens each, in which KV blocks.

Continuous batching with chunked prefill, prefix caching and recompute preemption (docs/02): the
policy here is "fcfs"; "priority" is priority_scheduler.py, loaded when chosen. Plain ints and lists,
no arrays. The scheduler is the only code that moves a sequence between `waiting` and `running` or
gives it blocks and takes them back; what it needs of a request is on the request, not its parameters.
"""

from __future__ import annotations

import dataclasses

from pyengine.cache import BlockManager, hash_block
from pyengine.sequence import Sequence, SequenceStatus

POLICIES = {"fcfs": ("pyengine.scheduler", "Scheduler"),  # scheduling_policy -> (module, class)
            "priority": ("pyengine.priority_scheduler", "PriorityScheduler")}


@dataclasses.dataclass(frozen=True)
class ScheduledSequence:
    seq: Sequence
    num_new_tokens: int  # tokens to run through the model this step (a chunk, or 1 to decode)

    @property
    def new_token_ids(self) -> list[int]:
        """The tokens this step runs through the model for the sequence."""
        first = self.seq.num_computed_tokens
        return self.seq.all_token_ids[first:first + self.num_new_tokens]

    @property
    def completes_prompt(self) -> bool:
        """True when this step computes the sequence's last token, so it samples a new one."""
        return self.seq.num_computed_tokens + self.num_new_tokens == self.seq.num_tokens


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """The sequences of one step, in the order their tokens are packed."""

    scheduled: tuple[ScheduledSequence, ...]

    def is_empty(self) -> bool:
        return not self.scheduled


class Scheduler:
    """Continuous batching with chunked prefill, prefix caching and recompute preemption."""

    policy = "fcfs"

    def __init__(self, blocks: BlockManager, max_num_seqs: int, max_num_batched_tokens: int):
        self.blocks, self.max_num_seqs, self.max_num_batched_tokens = blocks, max_num_seqs, max_num_batched_tokens
        self.waiting: list[Sequence] = []  # kept sorted by rank
        self.running: list[Sequence] = []  # in admission order

    def rank(self, seq: Sequence) -> tuple[int, ...]:
        """Sort key: smaller runs first and is preempted last."""
        return (seq.request.arrival_index, seq.index)

    def add(self, seq: Sequence) -> None:
        seq.status = SequenceStatus.WAITING
        self.waiting.append(seq)
        self.waiting.sort(key=self.rank)

    def blocked_sequence(self) -> Sequence | None:
        """The waiting sequence that cannot run even alone (nothing runs and it was not admitted)."""
        return self.waiting[0] if self.waiting and not self.running else None

    # -- the decision ----------------------------------------------------------------------------
    def schedule(self) -> BatchPlan:
        scheduled: list[ScheduledSequence] = []
        preempted: list[Sequence] = []
        budget = self.max_num_batched_tokens
        # 1. Running sequences, best ranked first: decodes and the next prefill chunks.
        for seq in sorted(self.running, key=self.rank):
            if seq not in self.running or budget == 0:
                continue
            num_new = min(seq.num_tokens - seq.num_computed_tokens, budget)
            while not self._reserve(seq, seq.num_computed_tokens + num_new):
                victim = max(self.running, key=self.rank)
                self.preempt(victim)
                preempted.append(victim)
                if victim is seq:
                    break
            if seq in self.running:
                scheduled.append(ScheduledSequence(seq, num_new))
                budget -= num_new
        # 2. Waiting sequences join while seats, budget and blocks last (none after a preemption).
        while self.waiting and not preempted and budget > 0 and len(self.running) < self.max_num_seqs:
            seq = self.waiting[0]
            if not self._admit(seq, budget):
                break
            self.waiting.pop(0)
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
            num_new = min(seq.num_tokens - seq.num_computed_tokens, budget)
            scheduled.append(ScheduledSequence(seq, num_new))
            budget -= num_new
        return BatchPlan(tuple(scheduled))

    def after_step(self, plan: BatchPlan) -> None:
        """The step ran: advance each sequence and offer its newly full blocks to the prefix cache."""
        for item in plan.scheduled:
            seq = item.seq
            seq.num_computed_tokens += item.num_new_tokens
            self._register_full_blocks(seq)

    def fork(self, parent: Sequence) -> tuple[list[Sequence], list[tuple[list[int], list[int]]]]:
        """n > 1, once the parent computed its prompt: its waiting siblings share its full blocks (never
        written again) and copy its partial last one; a sibling with no seat or block prefills on its own
        later. Returns the siblings that now run and the copies the cache must make: (sources, targets)."""
        siblings = [s for s in parent.request.sequences[1:]
                    if s.status is SequenceStatus.WAITING and not s.block_table and not s.output_token_ids
                    and s not in self.waiting]
        num_full = parent.num_computed_tokens // self.blocks.block_size
        shared, partial = parent.block_table[:num_full], parent.block_table[num_full:]
        forked, copies = [], []
        for sibling in siblings:
            if len(self.running) >= self.max_num_seqs or not self.blocks.can_allocate(len(partial)):
                self.add(sibling)  # no room now: it prefills on its own later
                continue
            self.blocks.take(shared)
            targets = self.blocks.allocate(len(partial))
            copies.append((partial, targets))
            sibling.block_table = shared + targets
            sibling.block_hashes = list(parent.block_hashes)
            sibling.num_computed_tokens = parent.num_computed_tokens
            sibling.status = SequenceStatus.RUNNING
            self.running.append(sibling)
            forked.append(sibling)
        return forked, copies

    def postprocess(self, seqs: list[Sequence]) -> None:
        """After the step's tokens are appended: sequences that now have a finish reason leave."""
        for seq in seqs:
            if seq.finish_reason is not None and not seq.is_finished:
                self.finish(seq, seq.finish_reason)

    def finish(self, seq: Sequence, reason: str) -> None:
        """End `seq` with `reason`: out of the queues, its blocks released."""
        seq.finish_reason = reason
        seq.status = SequenceStatus.FINISHED
        for queue in (self.running, self.waiting):
            if seq in queue:
                queue.remove(seq)
        self._release(seq)

    def preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self._release(seq)
        self.add(seq)

    # -- blocks ----------------------------------------------------------------------------------
    def _admit(self, seq: Sequence, budget: int) -> bool:
        """Take the cached prefix blocks and reserve the first chunk's blocks, or change nothing."""
        request = seq.request
        tokens = seq.all_token_ids
        reads_cache = not request.needs_prompt_logprobs  # prompt logprobs need every position computed
        hashes = self.blocks.block_hashes(tokens, request.cache_salt) if self.blocks.enable_prefix_caching else []
        cached = self.blocks.lookup_prefix(hashes, (len(tokens) - 1) // self.blocks.block_size) if reads_cache else []
        num_computed = len(cached) * self.blocks.block_size
        num_new = min(len(tokens) - num_computed, budget)
        needed = self.blocks.blocks_needed(num_computed + num_new) - len(cached)
        revived = sum(1 for b in cached if self.blocks.ref_counts[b] == 0)  # cached but free
        if not self.blocks.can_allocate(needed + revived):
            return False
        self.blocks.take(cached)
        seq.block_table = cached + self.blocks.allocate(needed)
        seq.block_hashes = hashes[:len(cached)]
        seq.num_computed_tokens = num_computed
        if seq.index == 0 and not seq.output_token_ids:
            request.num_cached_tokens = num_computed
        return True

    def _reserve(self, seq: Sequence, num_tokens: int) -> bool:
        missing = self.blocks.blocks_needed(num_tokens) - len(seq.block_table)
        if missing > 0 and not self.blocks.can_allocate(missing):
            return False
        seq.block_table.extend(self.blocks.allocate(max(missing, 0)))
        return True

    def _register_full_blocks(self, seq: Sequence) -> None:
        if not self.blocks.enable_prefix_caching:
            return
        size = self.blocks.block_size
        tokens = seq.all_token_ids
        for index in range(len(seq.block_hashes), seq.num_computed_tokens // size):
            parent = seq.block_hashes[-1] if seq.block_hashes else None
            block_hash = hash_block(parent, tokens[index * size:(index + 1) * size], seq.request.cache_salt)
            seq.block_hashes.append(block_hash)
            self.blocks.register(seq.block_table[index], block_hash)

    def _release(self, seq: Sequence) -> None:
        self.blocks.free(seq.block_table)
        seq.block_table = []
        seq.block_hashes = []
        seq.num_computed_tokens = 0
