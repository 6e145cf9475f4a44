"""The machinery every dataset shares: list files read and contained inside data_root
(files.py, contained.py), decoding, caching and copying of remote roots, noise injection,
the validation split, device placement, batches and streaming."""
