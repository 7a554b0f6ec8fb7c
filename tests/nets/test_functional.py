import pytest
import torch
from torch import nn

from bayesmeta.errors import ShapeError
from bayesmeta.nets import MLP, FunctionalNet


class Plain(nn.Module):
    """A module without batched_forward: exercises the vmap path."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 5)
        self.b = nn.Linear(5, 1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def test_flatten_unflatten_round_trip():
    fnet = FunctionalNet(MLP((2, 4, 3)))
    params = fnet.expand(fnet.params(), (7,))
    flat = fnet.flatten(params)
    assert flat.shape == (7, fnet.num_params) and fnet.num_params == 2 * 4 + 4 + 4 * 3 + 3
    for a, b in zip(fnet.unflatten(flat), params, strict=True):
        assert torch.equal(a, b)


def test_vmap_path_matches_mlp_fast_path_and_loop():
    torch.manual_seed(1)
    plain = Plain()
    mlp = MLP((2, 5, 1), activation="tanh")
    mlp.load_state_dict(
        {
            "layers.0.weight": plain.a.weight,
            "layers.0.bias": plain.a.bias,
            "layers.1.weight": plain.b.weight,
            "layers.1.bias": plain.b.bias,
        }
    )
    f_plain, f_mlp = FunctionalNet(plain), FunctionalNet(mlp)
    assert f_mlp.num_params == f_plain.num_params
    flat = torch.randn(3, 4, f_plain.num_params)
    x = torch.randn(4, 6, 2)
    out_plain = f_plain(flat, x)
    torch.testing.assert_close(out_plain, f_mlp(flat, x))
    # unbatched weights and unbatched inputs use functional_call directly
    torch.testing.assert_close(f_plain(flat[1, 2], x[2]), out_plain[1, 2])
    # unbatched inputs broadcast over the weight batch
    torch.testing.assert_close(f_plain(flat[:, 0], x[0]), out_plain[:, 0])


def test_gradients_flow_through_flat_weights():
    fnet = FunctionalNet(Plain())
    flat = torch.randn(2, fnet.num_params, requires_grad=True)
    fnet(flat, torch.randn(2, 3, 2)).sum().backward()
    assert flat.grad is not None and bool(flat.grad.abs().sum() > 0)


def test_shape_errors_name_the_weight():
    fnet = FunctionalNet(MLP((2, 4, 1)))
    with pytest.raises(ShapeError, match="P = 17"):
        fnet.unflatten(torch.zeros(3, 16))
    params = list(fnet.expand(fnet.params(), (3,)))
    params[1] = torch.zeros(2, 4)
    with pytest.raises(ShapeError, match=r"weight 'layers\.0\.bias'"):
        fnet.batch_shape(params)


def test_rejects_modules_without_parameters():
    with pytest.raises(ValueError, match="no trainable parameters"):
        FunctionalNet(nn.ReLU())
