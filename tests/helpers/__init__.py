"""Helpers shared by tests of several layers; importable as `helpers` (tests/ is on sys.path via tests/conftest.py)."""
