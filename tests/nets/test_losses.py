import torch

from bayesmeta.nets.losses import ScaledLoss, cross_entropy, mse
from bayesmeta.priors import GaussianLikelihood


def _autograd_output_grad(loss, out, y):
    out = out.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(out, y).sum(), out)
    return g


def test_scaled_loss_value_and_output_grad_match_autograd():
    torch.manual_seed(0)
    out = torch.randn(3, 5, 2)
    y = torch.randn(3, 5, 2)
    labels = torch.randint(0, 2, (3, 5))
    factor = torch.tensor(0.37)
    cases = [(mse, y), (GaussianLikelihood(0.3, num_outputs=2), y), (cross_entropy, labels)]
    for loss, target in cases:
        scaled = ScaledLoss(loss, factor)
        torch.testing.assert_close(scaled(out, target), 0.37 * loss(out, target))
        assert scaled.output_grad is not None
        torch.testing.assert_close(
            scaled.output_grad(out, target), _autograd_output_grad(scaled, out, target)
        )


def test_scaled_loss_without_analytic_gradient_has_none():
    def custom(out, y):
        return (out - y).abs().mean((-1, -2))

    assert ScaledLoss(custom, 2.0).output_grad is None
