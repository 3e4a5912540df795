"""Sub-commands of the ``ssformer`` CLI, one module each."""
