"""The SD training engine: config, function libraries, input data, generators, critic, study loop.

Imports torch and numpy only (never Ray), so it runs anywhere a critic is trained.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, load_config, resolve
from .critic import Critic, critic_input
from .data import InputData, load_data
from .generators import make_generator
from .library import FunctionLibrary, load_library
from .study import METRICS, NonFiniteLossError, Study
from .regularize import REG_METRICS, Regularization, latent_recovery
from .runs import make_run, run_from_checkpoint
from .population import Population, pack_size, shape_key

__all__ = [
    "Config", "load_config", "resolve", "Critic", "critic_input", "InputData", "load_data", "make_generator",
    "FunctionLibrary", "load_library", "Study", "METRICS", "NonFiniteLossError", "save_checkpoint",
    "load_checkpoint", "Regularization", "REG_METRICS", "latent_recovery", "make_run", "run_from_checkpoint",
    "Population", "pack_size", "shape_key",
]
