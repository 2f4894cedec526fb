"""The web UI's pages, one module per area; each has its own router."""
