"""Execution backends. Each module implements the protocol in :mod:`cloudtrain.providers.base`;
:mod:`cloudtrain.providers.registry` finds them by name."""
