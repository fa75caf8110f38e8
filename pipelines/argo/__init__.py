"""The pipeline as an Argo WorkflowTemplate, for when training outgrows one machine."""
