"""The request protocols the service speaks: its own /v1, the Open Inference Protocol v2, and
MLflow's /invocations. Each decodes into columns and encodes the shared `Answer` its way."""
