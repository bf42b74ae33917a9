"""The lab domain: configuration, nodes, state machines and wire models. No Temporal, no FastAPI, no I/O."""
