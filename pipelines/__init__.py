"""The ML stages, the registry client, promotion and rollback, and the `mlops` command."""
