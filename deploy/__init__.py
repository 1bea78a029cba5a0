"""Production deployment files; `deploy.cluster` runs the whole topology on one machine."""
