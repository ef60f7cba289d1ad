"""The ``salespulse`` command line: the composition root, the one place that knows every stage (the shared
``salespulse`` package, ``training`` and ``service``). A stage's module is imported only when its command
runs, so ``salespulse data ...`` never loads the training stack."""
