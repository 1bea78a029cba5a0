"""Portable registry bundles (`export` writes them, `restore` reads them back): the backup against losing a server.

A bundle is a directory (or a .tar.gz of one) holding `manifest.json`, `registry.json` and
`artifacts/<sha256>.joblib`. Rows are written with natural keys only (slugs, label keys, version
numbers, text hashes, usernames), never database ids, so a bundle restores into any database.

Import verifies every artifact's bytes before it writes anything, refuses a bundle that disagrees
with what the database already holds (same version, different artifact), and is idempotent:
importing the same bundle twice changes nothing the second time.
"""
