import os

import pytest

# quiet Tune output in test logs; loopback binding is tune_sd.tune.cluster.connect's job (tested)
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


@pytest.fixture
def one_torch_thread():
    """Tiny critics on one torch thread: a second thread only adds hand-offs, and on a busy machine it stalls."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
