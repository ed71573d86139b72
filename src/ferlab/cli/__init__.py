"""The ``ferlab`` command line: one command, one module of verbs per area."""
