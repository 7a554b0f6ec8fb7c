import pytest
import torch

from bayesmeta.errors import ShapeError
from bayesmeta.nets import MLP, FunctionalNet
from bayesmeta.posteriors import LowRankTaskPosterior


def make(batch=(), rank=2, seed=0):
    torch.manual_seed(seed)
    fnet = FunctionalNet(MLP((1, 2, 1)))  # P = 7
    p = fnet.num_params
    return LowRankTaskPosterior(
        fnet,
        torch.randn(*batch, p),
        0.3 * torch.randn(*batch, p, rank),
        torch.rand(*batch, p) + 0.05,
        torch.tensor([0.2]),
    )


def test_samples_have_the_stated_mean_and_covariance():
    post = make()
    theta = post.sample(200_000, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(theta.mean(0), post.loc, atol=0.01, rtol=0)
    torch.testing.assert_close(theta.T.cov(), post.covariance(), atol=0.01, rtol=0)
    torch.testing.assert_close(post.distribution().covariance_matrix, post.covariance())
    torch.testing.assert_close(post.scale, post.covariance().diagonal().sqrt())


def test_batched_predict_shapes_and_noise():
    post = make(batch=(3,), rank=4)
    assert post.batch_shape == (3,) and post.rank == 4
    pred = post.predict(torch.randn(3, 5, 1), num_samples=6)
    assert pred.function_samples.shape == (6, 3, 5, 1)
    torch.testing.assert_close(pred.aleatoric_std, torch.full((3, 5, 1), 0.2))
    with pytest.raises(ValueError, match="query_x must have shape"):
        post.predict(torch.randn(5, 1))


def test_bad_parts_are_refused():
    post = make()
    with pytest.raises(ShapeError, match="must share"):
        LowRankTaskPosterior(post.fnet, post.loc, post.cov_factor[:-1], post.cov_diag)
    with pytest.raises(ValueError, match="cov_diag must be positive"):
        LowRankTaskPosterior(post.fnet, post.loc, post.cov_factor, -post.cov_diag)
    with pytest.raises(ValueError, match="num_samples"):
        post.sample(0)
