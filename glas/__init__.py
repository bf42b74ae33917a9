"""The seed's (GLAS's) Python surface and HTTP API over ours: a GLAS lab project runs unchanged (the
seed's import paths, at the package's root, re-export from here)."""
