"""Tests of the read API (yieldstream/api) over a real store built from recorded responses."""
