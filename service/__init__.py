"""The inference service: serves exactly the pinned model version, verified by its digest."""
