"""Placeholder: commands are registered here by their owner."""

from deepmf.cli.app import app  # noqa: F401
