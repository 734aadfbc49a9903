"""``python -m kitchen``: the ``kitchen`` command, for launchers that start a module
(``torchrun --nproc-per-node N -m kitchen run …``)."""

from kitchen.cli import entrypoint

entrypoint()
