"""genkit lstm plugin (work in progress)."""
