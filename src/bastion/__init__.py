"""Bastion: secure MLOps from raw data to monitored production."""
__version__ = "0.1.0"
