from kitchen.cli import entrypoint

entrypoint()
