"""A per-user round-robin queue: the order in which waiting jobs start.

One global FIFO lets one user's burst sit in front of everyone else: a second user's job
waits for the whole burst. Here each user has a FIFO of their own, and :meth:`FairQueue.pop`
takes the head of the next user in turn, so a user who joins while another floods waits for
at most one job per other waiting user (then the per-user cap bounds how much any one user
can have waiting at all). Within one user the order stays first come, first served.

Pure and synchronous: no locks and no I/O. The caller (the embedded job runner) holds its
own lock around every call, as it did around the deque this replaces.

How the runner uses it::

    queue = FairQueue()
    queue.push(user_id, generation_id)   # at submission and for each job recovered at start
    generation_id = queue.pop()          # at dequeue: None when nothing waits
    queue.remove(generation_id)          # cancel of a queued job: True when it was waiting
    len(queue), generation_id in queue   # depth and membership
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Hashable, Iterator

__all__ = ["FairQueue"]


class FairQueue:
    """Job ids in per-user FIFOs, popped round-robin across the users that have any waiting."""

    def __init__(self) -> None:
        # The users with something waiting, in the order their turn comes: a user goes to the
        # back after each pop and leaves when their FIFO is empty.
        self._users: OrderedDict[Hashable, deque[str]] = OrderedDict()
        self._owner: dict[str, Hashable] = {}

    def __len__(self) -> int:
        return len(self._owner)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._owner

    def __iter__(self) -> Iterator[str]:
        """The waiting ids in the order :meth:`pop` would return them (if nothing is pushed meanwhile)."""
        queues = [list(q) for q in self._users.values()]
        for depth in range(max((len(q) for q in queues), default=0)):
            for queue in queues:
                if depth < len(queue):
                    yield queue[depth]

    def push(self, user: Hashable, job_id: str) -> None:
        """Queue ``job_id`` behind ``user``'s other waiting jobs; a user new to the queue takes
        the last turn of the current round."""
        if job_id in self._owner:
            raise ValueError(f"job {job_id!r} is already queued")
        queue = self._users.get(user)
        if queue is None:
            queue = self._users[user] = deque()
        queue.append(job_id)
        self._owner[job_id] = user

    def pop(self) -> str | None:
        """The next job: the oldest of the user whose turn it is; None when nothing waits."""
        if not self._users:
            return None
        user, queue = next(iter(self._users.items()))
        job_id = queue.popleft()
        del self._owner[job_id]
        if queue:
            self._users.move_to_end(user)
        else:
            del self._users[user]
        return job_id

    def remove(self, job_id: str) -> bool:
        """Take a waiting job out (its cancel); False when it was not waiting."""
        user = self._owner.pop(job_id, None)
        if user is None:
            return False
        queue = self._users[user]
        queue.remove(job_id)
        if not queue:
            del self._users[user]
        return True

    def waiting(self, user: Hashable) -> int:
        """How many of ``user``'s jobs wait."""
        queue = self._users.get(user)
        return len(queue) if queue is not None else 0

    def users(self) -> int:
        """How many users have a job waiting."""
        return len(self._users)
