"""`headstart host`: a local competition served over Kaggle's HTTP API (not a pipeline stage).

common (errors, settings) <- kernels (kernel runs, datasets) <- state (shared state) <- api (the RPCs)
<- server (HTTP).
"""
