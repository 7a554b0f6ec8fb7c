"""Instance-based transfer: importance-weighted source points in the transfer fit."""

import torch
from torch import nn

from bayesmeta.transfer import TransferLearner, density_ratio


def test_importance_weighted_source_points_fit_the_target_region_better():
    """Covariate shift with a misspecified model (a line through sin x): weighting helps."""
    g = torch.Generator().manual_seed(0)
    source_x = torch.randn(500, 1, generator=g)
    target_x = 1.5 + 0.5 * torch.randn(5, 1, generator=g)
    test_x = 1.5 + 0.5 * torch.randn(2000, 1, generator=g)

    def f(x):
        return torch.sin(x) + 0.1 * torch.randn(x.shape, generator=g)

    source_y, target_y, test_y = f(source_x), f(target_x), f(test_x)
    ratio = density_ratio(source_x, target_x.repeat(20, 1) + 0.05 * torch.randn(100, 1))
    x = torch.cat([source_x, target_x])
    y = torch.cat([source_y, target_y])
    torch.manual_seed(0)
    net = nn.Linear(1, 1)
    kw = {"method": "map", "prior_scale": 10.0, "noise_scale": 0.3, "learn_noise": False}
    kw.update(steps=1500, lr=0.05, progress=False)
    mse = {}
    for name, w in [
        ("pooled", None),
        ("weighted", torch.cat([ratio.weights, torch.ones(5)])),
    ]:
        fit = TransferLearner.from_scratch(net, **kw).adapt(x, y, weights=w)
        mse[name] = float((fit.predict(test_x).mean - test_y).pow(2).mean())
    assert mse["weighted"] < 0.6 * mse["pooled"]
    assert ratio.effective_sample_size < 400  # the weights concentrate on the target region
