"""Dagster code location: thin assets, sensors, schedules and checks over ``tving_resources``."""
