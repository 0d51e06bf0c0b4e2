"""genkit vae plugin (work in progress)."""
