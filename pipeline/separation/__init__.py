"""The separator: spectrograms, the audio store, the AVSGS model and its layers (``nn``), losses,
the mix-and-separate data, and training."""
