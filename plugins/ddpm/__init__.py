"""genkit ddpm plugin (work in progress)."""
