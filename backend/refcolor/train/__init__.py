"""Training the default model: recipes, the prepared sample cache and the resumable loop."""
