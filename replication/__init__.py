"""The study driver: runs the claims of 'Transformers are RNNs' on every backend and writes results."""
