"""The Hugging Face Hub: model cards (``card``) and uploads in one commit (``push``)."""
