"""The priority policy: lower `priority` runs first (then arrival order), and is preempted last.

vLLM's `scheduling_policy="priority"`, loaded by an engine that chooses it (scheduler.POLICIES).
Besides ranking by priority, a waiting request that outranks a running one takes its seat or blocks
when it could not get them otherwise: the running sequence ranked last is preempted for it.
"""

from __future__ import annotations

from pyengine.scheduler import BatchPlan, Scheduler
from pyengine.sequence import Sequence


class PriorityScheduler(Scheduler):
    """The scheduler, ranking by (priority, arrival) and making room for urgent arrivals."""

    policy = "priority"

    def rank(self, seq: Sequence) -> tuple[int, ...]:
        return (seq.request.priority, seq.request.arrival_index, seq.index)

    def schedule(self) -> BatchPlan:
        self._make_room_for_urgent()
        return super().schedule()

    def _make_room_for_urgent(self) -> None:
        """Preempt the running sequence ranked last while the first waiting one outranks it and lacks a
        seat or blocks for its first chunk."""
        while self.waiting and self.running:
            seq, worst = self.waiting[0], max(self.running, key=self.rank)
            if self.rank(worst) <= self.rank(seq):
                break
            first_chunk = min(seq.num_tokens, self.max_num_batched_tokens)
            has_seat = len(self.running) < self.max_num_seqs
            if has_seat and self.blocks.can_allocate(self.blocks.blocks_needed(first_chunk)):
                break
            self.preempt(worst)
