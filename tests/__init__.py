"""Tests that cross services: integration, end to end, security, resilience.

A package, so that test modules import the shared helpers as ``tests.support``.
"""
