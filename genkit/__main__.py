"""``python -m genkit`` and ``accelerate launch -m genkit train ...``."""

import sys

from genkit.cli.main import main

sys.exit(main())
