"""``python -m genkit`` and ``accelerate launch -m genkit train ...``."""

import sys

from genkit.cli import main

sys.exit(main())
