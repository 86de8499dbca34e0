"""Fixtures shared by all tests: the real-service harness from kew.testing."""

pytest_plugins = ["kew.testing.fixtures"]
