"""Small classification task sets shared by the metric learners' tests."""

import torch
from torch import nn

from bayesmeta import TaskBatch


class Blobs:
    """N-way tasks of Gaussian blobs: the class signal lives in the first two of ``dim``
    features, the others are loud noise, so an encoder has to learn where to look."""

    def __init__(self, n_way=3, k_shot=5, n_query=10, dim=6, seed=0, dtype=torch.float32):
        self.n_way, self.k_shot, self.n_query, self.dim = n_way, k_shot, n_query, dim
        self.generator = torch.Generator().manual_seed(seed)
        self.dtype = dtype

    def _points(self, centres, labels):
        g = self.generator
        t, n = labels.shape
        x = 4.0 * torch.randn(t, n, self.dim, generator=g, dtype=self.dtype)
        signal = centres.gather(1, labels.unsqueeze(-1).expand(t, n, 2))
        x[..., :2] = signal + 0.5 * torch.randn(t, n, 2, generator=g, dtype=self.dtype)
        return x

    def sample(self, num_tasks, *, generator=None):
        g = self.generator
        centres = 2.0 * torch.randn(num_tasks, self.n_way, 2, generator=g, dtype=self.dtype)
        sy = torch.arange(self.n_way).repeat_interleave(self.k_shot).expand(num_tasks, -1)
        qy = torch.randint(self.n_way, (num_tasks, self.n_query), generator=g)
        sx, qx = self._points(centres, sy), self._points(centres, qy)
        return TaskBatch(sx, sy.clone(), qx, qy, self.n_way)


def unequal_batch(t=4, dtype=torch.float64, seed=0):
    """Support sets with different class counts in each task (K = 7, 3 classes)."""
    g = torch.Generator().manual_seed(seed)
    ys = []
    for _ in range(t):
        y = torch.cat([torch.arange(3), torch.randint(3, (4,), generator=g)])
        ys.append(y[torch.randperm(7, generator=g)])
    sy = torch.stack(ys)
    qy = torch.randint(3, (t, 5), generator=g)
    sx = torch.randn(t, 7, 4, generator=g, dtype=dtype) + sy.unsqueeze(-1).to(dtype)
    qx = torch.randn(t, 5, 4, generator=g, dtype=dtype) + qy.unsqueeze(-1).to(dtype)
    return TaskBatch(sx, sy, qx, qy, 3)


def encoder(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 5)).to(dtype)
