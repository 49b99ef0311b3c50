"""Measurement: meters that strategies report phases to."""
