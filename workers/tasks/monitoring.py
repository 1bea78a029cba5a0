"""Tasks on the `monitoring` queue."""
