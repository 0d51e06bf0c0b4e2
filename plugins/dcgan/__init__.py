"""genkit dcgan plugin (work in progress)."""
