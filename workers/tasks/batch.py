"""Tasks on the `batch` queue."""
