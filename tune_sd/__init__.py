"""tune_sd: hyperparameter studies of symbolic discriminators on Ray Tune and PyTorch."""

__version__ = "0.1.0"
