"""A tiny stand-in for the project's apps (tests only)."""
