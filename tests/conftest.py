"""Shared pytest fixtures."""

import pytest


@pytest.fixture
def one_torch_thread():
    """One torch thread: tiny models gain nothing from more, and the CI/dev machines are shared."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
