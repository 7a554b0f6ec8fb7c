import pytest
import torch

from bayesmeta.nets import MLP, FunctionalNet


def test_forward_matches_sequential_layers():
    torch.manual_seed(0)
    net = MLP((3, 8, 8, 2), activation="tanh")
    x = torch.randn(5, 3)
    h = torch.tanh(net.layers[0](x))
    h = torch.tanh(net.layers[1](h))
    torch.testing.assert_close(net(x), net.layers[2](h))


def test_batched_forward_equals_per_weight_set_forward():
    torch.manual_seed(0)
    net = MLP((2, 16, 1))
    fnet = FunctionalNet(net)
    s, t = 3, 4
    flat = torch.randn(s, t, fnet.num_params)
    x = torch.randn(t, 6, 2)
    out = fnet(flat, x)
    assert out.shape == (s, t, 6, 1)
    for i in range(s):
        for j in range(t):
            params = fnet.unflatten(flat[i, j])
            with torch.no_grad():
                for p, v in zip(net.parameters(), params, strict=True):
                    p.copy_(v)
            torch.testing.assert_close(out[i, j], net(x[j]))


@pytest.mark.parametrize(("sizes", "match"), [((3,), "at least an input"), ((3, 0, 1), "all >= 1")])
def test_bad_sizes(sizes, match):
    with pytest.raises(ValueError, match=match):
        MLP(sizes)


def test_unknown_activation_lists_choices():
    with pytest.raises(ValueError, match="choose one of"):
        MLP((1, 2, 1), activation="swishy")


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "gelu"])
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
def test_hand_written_loss_grad_equals_autograd_to_second_order(activation, loss_name):
    from bayesmeta.nets.losses import get_loss

    torch.manual_seed(0)
    torch.set_default_dtype(torch.float64)
    try:
        out = 3 if loss_name == "cross_entropy" else 2
        net = MLP((2, 7, 5, out), activation=activation)
        fnet = FunctionalNet(net)
        loss = get_loss(loss_name)
        params = tuple(p.detach().requires_grad_(True) for p in fnet.expand(fnet.params(), (4,)))
        params = tuple(p.clone() for p in params)
        x = torch.randn(4, 6, 2)
        y = torch.randint(out, (4, 6)) if loss_name == "cross_entropy" else torch.randn(4, 6, out)
        got = fnet.loss_grad(params, x, y, loss, create_graph=True)
        want = torch.autograd.grad(loss(fnet(params, x), y).sum(), params, create_graph=True)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w)
        # and their derivatives (the second-order terms MAML needs) agree too
        probe = [torch.randn_like(g) for g in got]
        d_got = torch.autograd.grad(
            sum((g * p).sum() for g, p in zip(got, probe, strict=True)), params
        )
        d_want = torch.autograd.grad(
            sum((w * p).sum() for w, p in zip(want, probe, strict=True)), params
        )
        for g, w in zip(d_got, d_want, strict=True):
            torch.testing.assert_close(g, w)
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("tensor_lr", [False, True])
def test_descent_step_equals_loss_grad_step_to_second_order(activation, tensor_lr):
    from bayesmeta.nets.losses import mse

    torch.manual_seed(0)
    torch.set_default_dtype(torch.float64)
    try:
        net = MLP((2, 7, 5, 2), activation=activation)
        fnet = FunctionalNet(net)
        params = tuple(p.detach().clone().requires_grad_(True) for p in fnet.params())
        start = fnet.expand(params, (4,))
        lr = torch.tensor(0.3, requires_grad=True) if tensor_lr else 0.3
        x, y = torch.randn(4, 6, 2), torch.randn(4, 6, 2)
        got = fnet.descent_step(start, x, y, mse, lr)
        assert got is not None
        grads = fnet.loss_grad(start, x, y, mse, create_graph=True)
        want = tuple(p - lr * g for p, g in zip(start, grads, strict=True))
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w)
        # the derivatives through the step, to the weights (and a tensor step size)
        probe = [torch.randn_like(g) for g in got]
        wrt = (*params, lr) if tensor_lr else params
        d_got = torch.autograd.grad(
            sum((g * p).sum() for g, p in zip(got, probe, strict=True)), wrt
        )
        d_want = torch.autograd.grad(
            sum((w * p).sum() for w, p in zip(want, probe, strict=True)), wrt
        )
        for g, w in zip(d_got, d_want, strict=True):
            torch.testing.assert_close(g, w)
    finally:
        torch.set_default_dtype(torch.float32)


def test_descent_step_is_none_without_a_hand_written_backward():
    from bayesmeta.nets.losses import mse

    fnet = FunctionalNet(MLP((2, 3, 1), activation="gelu"))
    start = fnet.expand(fnet.params(), (2,))
    assert fnet.descent_step(start, torch.randn(2, 4, 2), torch.randn(2, 4, 1), mse, 0.1) is None


def test_hand_written_loss_grad_is_differentiable_once_not_twice():
    from bayesmeta.nets.losses import mse

    torch.manual_seed(0)
    fnet = FunctionalNet(MLP((2, 5, 1)))
    params = tuple(
        p.detach().clone().requires_grad_(True) for p in fnet.expand(fnet.params(), (3,))
    )
    x, y = torch.randn(3, 4, 2), torch.randn(3, 4, 1)
    got = fnet.loss_grad(params, x, y, mse, create_graph=True)
    torch.autograd.grad(sum(g.pow(2).sum() for g in got), params)  # once: fine
    with pytest.raises(RuntimeError, match="differentiable once"):
        torch.autograd.grad(sum(g.pow(2).sum() for g in got), params, create_graph=True)
