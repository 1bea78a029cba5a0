"""What both sides of a bundle agree on: its format version and its error."""

BUNDLE_FORMAT = 1


class BundleError(Exception):
    """The bundle is unreadable, corrupted or conflicts with this database; nothing was written."""
