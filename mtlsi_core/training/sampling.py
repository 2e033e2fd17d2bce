"""An endless, resumable sample order for iteration-based training.

Epoch ``e`` is ``DistributedSampler(shuffle=True, seed=seed)`` after ``set_epoch(e)``: a permutation of the
dataset split across ranks (one rank without DDP). The stream of a rank is epoch 0's share, then epoch 1's,
and so on without end. Iteration ``i`` of a run with per-rank batch ``B`` consumes positions
``[i * B, (i + 1) * B)`` of that stream, so a resumed run restarts the stream at ``iteration * B`` and sees
exactly the samples the uninterrupted run would have seen.
"""
from __future__ import annotations

from typing import Iterator, Sized

from torch.utils.data import DistributedSampler, Sampler


class ResumableInfiniteSampler(Sampler[int]):
    def __init__(self, dataset: Sized, *, seed: int, rank: int = 0, world_size: int = 1, start: int = 0):
        if len(dataset) == 0:
            raise ValueError("the training set is empty")
        if start < 0:
            raise ValueError(f"sampler start position must be >= 0, got {start}")
        self._dist = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                        drop_last=False)
        self.per_epoch = len(self._dist)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start

    def __iter__(self) -> Iterator[int]:
        epoch, offset = divmod(self.start, self.per_epoch)
        while True:
            self._dist.set_epoch(epoch)
            order = list(self._dist)
            yield from order[offset:]
            offset = 0
            epoch += 1

    def state(self, position: int) -> dict[str, int]:
        """What a checkpoint records to check a resume against (``position`` = samples consumed on this rank)."""
        return {"position": position, "per_epoch": self.per_epoch, "seed": self.seed, "world_size": self.world_size}
