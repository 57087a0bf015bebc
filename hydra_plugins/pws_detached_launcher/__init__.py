"""The project's Hydra launcher plugins (Hydra takes launchers from its ``hydra_plugins`` namespace only)."""
