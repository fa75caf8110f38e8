"""What runs where, in git: pins, promotions, rollbacks, history, status and their evidence."""
