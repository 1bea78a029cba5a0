"""The bottom layer, below every app: the domain error type and settings-free input helpers.

Imports nothing from the apps or from the project package (`tagging_platform`); an
import-linter contract (pyproject.toml) keeps it so.
"""
