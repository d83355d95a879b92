"""Command bodies shared by the CLI and the app (the preamble in `common`)."""
