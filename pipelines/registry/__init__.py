"""The MLflow registry side: the store client, the bundle, registering and importing models,
their lineage, and the aliases that follow git."""
