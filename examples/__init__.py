"""Examples for the developers of shared apps (not part of the service)."""
