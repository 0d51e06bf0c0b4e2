"""Training: one Accelerate loop for every plugin (``trainer``), its checkpoints in safetensors + JSON
(``checkpoint``), sample grids (``samples``), and a run into an output folder from start to saved model (``run``)."""
