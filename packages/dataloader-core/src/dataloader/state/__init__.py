"""Recipe state: the model, the backend API and the built-in local backend."""

from dataloader.state.backend import StateBackend, StateBackendConfig, StateBackendPlugin
from dataloader.state.local import LocalStateBackend, LocalStateConfig
from dataloader.state.model import State

__all__ = [
    "LocalStateBackend",
    "LocalStateConfig",
    "State",
    "StateBackend",
    "StateBackendConfig",
    "StateBackendPlugin",
]
