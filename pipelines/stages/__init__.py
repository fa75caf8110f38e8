"""The DVC stages, one module each: ingest ► split ► train ► export ► evaluate ► gate.

Each is a typed core function plus a thin `main()` that `dvc.yaml` calls with every path."""
