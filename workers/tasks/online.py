"""Tasks on the `online` queue."""
