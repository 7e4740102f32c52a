"""Tests for the exports app."""
