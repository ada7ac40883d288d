"""Configuration: one declarative schema (``schema.py``), a loader that reports every
problem at once with file and key path (``load.py``), and typed settings (``model.py``)."""

from .load import DEFAULT_PATH, find_config_path, load_config
from .model import Config, NodeConfig, RepositoryConfig

__all__ = ["Config", "NodeConfig", "RepositoryConfig", "DEFAULT_PATH", "find_config_path", "load_config"]
