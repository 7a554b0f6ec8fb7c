"""Shared test setup."""

import torch

# The networks in the tests are tiny: one thread is as fast as two, and it keeps
# the suite from stalling on a busy shared machine (spinning OpenMP workers).
torch.set_num_threads(1)
