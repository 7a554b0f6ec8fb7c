"""The ``bayesmeta`` command line."""
