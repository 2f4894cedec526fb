"""Use cases shared by the HTTP API, the web UI and the CLI; they raise domain errors."""
