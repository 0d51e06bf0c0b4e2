"""Space templates, one folder per model family; installed with genkit as the package ``genkit_spaces``."""
