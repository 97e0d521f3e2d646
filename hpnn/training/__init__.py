"""The training loop's pieces: callbacks and the progress bar."""
