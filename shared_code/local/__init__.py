"""Local tooling: running the app and its dependencies on a developer machine (Azurite)."""
