"""How a new version reaches users: the release strategy of each environment and model, chosen
in git (strategy.py), A/B tests with an always-valid verdict (abtest.py, ab_report.py) and their
conclusion as a promotion (ab_conclude.py)."""
