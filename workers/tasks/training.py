"""Tasks on the `training` queue."""
