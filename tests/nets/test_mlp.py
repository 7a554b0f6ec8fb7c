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
