"""Gradio Space for a genkit DCGAN (written by `genkit space build`).

Samples by seed and class, interpolation strips and latent arithmetic between seeds, and the discriminator's
realness score of an uploaded image. Run it locally with `pip install -r requirements.txt gradio` then
`python app.py`; GRADIO_SERVER_NAME and GRADIO_SERVER_PORT choose where it listens.
"""

from pathlib import Path

from genkit.demo import launch, load_demo

MODEL = Path(__file__).parent / "model"  # set by genkit space build

demo = load_demo(str(MODEL))

if __name__ == "__main__":
    launch(demo)
