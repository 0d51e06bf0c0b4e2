"""Gradio Space for a genkit LSTM language model (written by `genkit space build`).

A prompt, max new tokens, temperature, top-k, top-p and seed; the text streams in token by token. Run it locally
with `pip install -r requirements.txt gradio` then `python app.py`; GRADIO_SERVER_NAME and GRADIO_SERVER_PORT
choose where it listens.
"""

from pathlib import Path

from genkit.demo import launch, load_demo

MODEL = Path(__file__).parent / "model"  # set by genkit space build

demo = load_demo(str(MODEL))

if __name__ == "__main__":
    launch(demo)
