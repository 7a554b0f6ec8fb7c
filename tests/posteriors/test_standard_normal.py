"""``standard_normal``: draws on the generator's device, moved to the weights' device."""

import torch

from bayesmeta.posteriors import standard_normal


def test_same_draws_as_torch_distributions_under_a_seed() -> None:
    like = torch.zeros(2, dtype=torch.float64)
    got = standard_normal((4, 3), like, torch.Generator().manual_seed(7))
    seeded = torch.Generator().manual_seed(7)
    want = torch.empty(4, 3, dtype=torch.float64).normal_(generator=seeded)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.manual_seed(3)
    first = standard_normal((5,), like)
    torch.manual_seed(3)
    torch.testing.assert_close(first, torch.empty(5, dtype=torch.float64).normal_())


def test_a_generator_of_another_device_draws_there_and_the_draws_move() -> None:
    # A CPU generator with weights elsewhere ("meta" stands in for a GPU here): the draws
    # are taken from the CPU generator, whose state moves on, and land on the weights' device.
    g = torch.Generator().manual_seed(0)
    before = g.get_state()
    out = standard_normal((3, 2), torch.empty(1, device="meta"), g)
    assert out.device.type == "meta" and out.shape == (3, 2)
    assert not torch.equal(g.get_state(), before)
