import torch

from bayesmeta.inference import gradient_steps
from bayesmeta.nets import MLP, FunctionalNet
from bayesmeta.nets.losses import mse


def test_batched_steps_equal_per_task_sgd():
    torch.manual_seed(0)
    net = MLP((1, 8, 1))
    fnet = FunctionalNet(net)
    x, y = torch.randn(3, 6, 1), torch.randn(3, 6, 1)
    adapted = gradient_steps(
        fnet, fnet.expand(fnet.params(), (3,)), x, y, mse, steps=3, lr=0.1, differentiable=False
    )
    for t in range(3):
        clone = MLP((1, 8, 1))
        clone.load_state_dict(net.state_dict())
        opt = torch.optim.SGD(clone.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            ((clone(x[t]) - y[t]) ** 2).mean().backward()
            opt.step()
        for got, want in zip(adapted, clone.parameters(), strict=True):
            torch.testing.assert_close(got[t], want.detach())


def test_zero_steps_return_start_and_detach_when_not_differentiable():
    fnet = FunctionalNet(MLP((1, 4, 1)))
    start = fnet.expand(fnet.params(), (2,))
    same = gradient_steps(
        fnet, start, torch.randn(2, 3, 1), torch.randn(2, 3, 1), mse, steps=0, lr=0.1
    )
    assert all(a is b for a, b in zip(same, start, strict=True))
    out = gradient_steps(
        fnet,
        start,
        torch.randn(2, 3, 1),
        torch.randn(2, 3, 1),
        mse,
        steps=2,
        lr=0.1,
        differentiable=False,
    )
    assert not any(p.requires_grad for p in out)


def test_per_parameter_rates_scale_each_step():
    fnet = FunctionalNet(MLP((1, 4, 1)))
    start = fnet.expand(fnet.params(), (2,))
    x, y = torch.randn(2, 3, 1), torch.randn(2, 3, 1)
    rates = [torch.full(p.shape, 0.05) for p in fnet.params()]
    a = gradient_steps(fnet, start, x, y, mse, steps=2, lr=rates, differentiable=False)
    b = gradient_steps(fnet, start, x, y, mse, steps=2, lr=0.05, differentiable=False)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v)


def test_per_task_gradient_clipping_rescales_each_task_separately():
    torch.manual_seed(0)
    fnet = FunctionalNet(MLP((1, 4, 1)))
    start = fnet.expand(fnet.params(), (2,))
    x = torch.randn(2, 3, 1)
    y = torch.stack([torch.full((3, 1), 100.0), torch.zeros(3, 1)])  # task 0: huge gradient
    grads = fnet.loss_grad(start, x, y, mse, create_graph=False)
    norms = torch.stack([g.pow(2).reshape(2, -1).sum(-1) for g in grads]).sum(0).sqrt()
    max_norm = float(norms[1]) * 0.5 + float(norms[0]) * 0.0 + 1.0
    out = gradient_steps(
        fnet, start, x, y, mse, steps=1, lr=0.1, differentiable=False, max_grad_norm=max_norm
    )
    for o, s, g in zip(out, start, grads, strict=True):
        step = (s.detach() - o) / 0.1
        scale0 = min(1.0, max_norm / float(norms[0]))
        scale1 = min(1.0, max_norm / float(norms[1]))
        torch.testing.assert_close(step[0], g[0] * scale0)
        torch.testing.assert_close(step[1], g[1] * scale1)
    assert float(norms[0]) > max_norm  # task 0 really was clipped
