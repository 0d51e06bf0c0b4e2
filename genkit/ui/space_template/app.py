"""Gradio Space for a genkit model (written by `genkit space build`).

It loads the model with `genkit.load` and serves the demo of the model's plugin; every control of the demo is also
an API endpoint ("Use via API" at the bottom of the page). Run it locally with
`pip install -r requirements.txt gradio` then `python app.py`; GRADIO_SERVER_NAME and GRADIO_SERVER_PORT choose
where it listens.
"""

from pathlib import Path

from genkit.ui.demo import launch, load_demo

MODEL = Path(__file__).parent / "model"  # set by genkit space build

demo = load_demo(str(MODEL))

if __name__ == "__main__":
    launch(demo)
