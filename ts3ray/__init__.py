"""ts3ray: TS3-Net lottery-ticket sweeps on Ray Tune."""
__version__ = "0.1.0"


def __getattr__(name: str):
    """`ts3ray.run`, `ts3ray.sweep`, `ts3ray.load` (api.py), imported on first use so that
    `import ts3ray` stays light for the result commands."""
    if name == "run":  # the module ts3ray/run.py, callable as the API's run
        import importlib

        return importlib.import_module("ts3ray.run")
    if name in ("sweep", "load", "Results"):
        from ts3ray import api

        return getattr(api, name)
    raise AttributeError(f"module 'ts3ray' has no attribute {name!r}")
