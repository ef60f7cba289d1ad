"""Models as they are served: self-contained classes that load without the training code."""
