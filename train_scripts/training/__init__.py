"""The training glue that every train script and tool shares: the run's config and run folder, one training run,
devices and clusters, callbacks, inference from a trained run or export, and the model registry
(``registry.py``). A library: nothing here is a command."""
