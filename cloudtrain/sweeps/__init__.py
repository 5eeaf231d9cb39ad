"""Hyperparameter sweeps: trials of one job spec with hyperparameters varied (``cloudtrain sweep``).

A spec's ``sweep:`` section (:class:`cloudtrain.spec.Sweep`) says what to vary and what to
optimise. Each trial is the sweep's spec with the trial's values merged into ``hyperparameters``
and ``sweep`` removed, so a trial reaches its script exactly as any job does: as ``--name value``
flags and through ``context().hp()``.

- Locally (:mod:`cloudtrain.sweeps.local`), Optuna proposes the trials and each one runs as a
  recorded local-executor job through the :class:`~cloudtrain.runner.Runner`; intermediate values
  of the objective, read from the trial's ``metrics.jsonl`` as it grows, feed the pruner.
  The study lives in ``$CLOUDTRAIN_HOME/sweeps/<spec name>.db`` (SQLite) under the study name
  ``<spec name>``: running ``cloudtrain sweep SPEC`` again continues that study until
  ``max_trials`` trials have ended (``--new`` starts afresh).
- On a cloud (:mod:`cloudtrain.sweeps.sagemaker`, :mod:`~cloudtrain.sweeps.vertex`,
  :mod:`~cloudtrain.sweeps.azureml`), the sweep is rendered as the cloud's own tuning service,
  built from the same request builders the providers use for one job, and validated with each
  SDK's own validation. What a service lacks is refused at plan time, naming the spec field.
- Cost (:mod:`cloudtrain.sweeps.bounds`): a sweep's bound is ``max_trials`` x one trial's bound.

Modules import Optuna, matplotlib and the cloud SDKs lazily, inside functions.
"""
