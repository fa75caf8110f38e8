"""placeholder"""
ROUTES: frozenset[str] = frozenset()


def build(state, check, security):
    return []
