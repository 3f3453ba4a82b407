"""Tests of requests for assistance."""
