"""The `sqlite` destination: a third-party destination with the engine's schema handling."""
