"""headstart's flows and command line."""
