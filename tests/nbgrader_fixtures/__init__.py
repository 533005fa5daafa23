"""Helpers for the nbgrader tests and benchmark: a throw-away course directory and fake submissions."""
