"""What people see: the Gradio machinery every plugin's demo is built with (``demo``) and Spaces (``spaces``)."""
