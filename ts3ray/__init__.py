"""ts3ray: TS3-Net lottery-ticket sweeps on Ray Tune."""
__version__ = "0.1.0"
