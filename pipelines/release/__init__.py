"""How a new version reaches users: A/B tests with an always-valid verdict, and their
conclusion as a promotion."""
