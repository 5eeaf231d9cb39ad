"""What a training script sees, wherever it runs (stdlib only; shipped inside the code bundle).

    from cloudtrain.runtime import context
    ctx = context()
    data_dir = ctx.inputs.get("train")          # a local directory or file, or None
    lr = ctx.hyperparameters.get("lr", 1e-3)
    ...
    ctx.log_metric("val_loss", 0.12, step=100)
    save(model, ctx.model_dir / "model.pt")

See :mod:`cloudtrain.runtime.context` for how each environment is read.
"""

from cloudtrain.runtime.context import METRIC_PATTERN, RunContext, context, metric_regex

__all__ = ["RunContext", "context", "METRIC_PATTERN", "metric_regex"]
