"""What a finished (or resumed) sweep shows: its trials, the best one, and a PNG of the study."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One dict per trial, in order: number, state, value, params, job id, seconds, steps reported,
    and for a trial that failed, why (its job's error, or the objective it never logged)."""
    import optuna

    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.state == optuna.trial.TrialState.WAITING:
            continue  # enqueued, not run yet
        rows.append({
            "number": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            "params": dict(trial.params),
            "job_id": trial.user_attrs.get("job_id"),
            "seconds": trial.user_attrs.get("seconds"),
            "steps": len(trial.intermediate_values),
            "interrupted": bool(trial.user_attrs.get("interrupted")),
            "rerun_of": trial.user_attrs.get("rerun_of"),  # the interrupted trial whose values this one runs again
            "reason": trial.user_attrs.get("reason"),
        })
    return rows


def best(study: Any) -> dict[str, Any] | None:
    import optuna

    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return None
    trial = study.best_trial
    return {"params": dict(trial.params), "value": trial.value, "number": trial.number, "job_id": trial.user_attrs.get("job_id")}


def result(study: Any, storage_path: Path, figure: Path | None, figure_notes: list[str]) -> dict[str, Any]:
    return {"study": study.study_name, "storage": str(storage_path), "best": best(study), "trials": trial_rows(study),
            "figure": str(figure) if figure else None, "figure_notes": figure_notes}


def write_figure(study: Any, path: Path) -> tuple[Path | None, list[str]]:
    """Optimisation history (each trial's value, best so far) and parameter importances, side by
    side, as a PNG. Importances need at least 2 completed trials and more than one parameter;
    otherwise that panel says why. Returns the path (None without any completed trial) and notes."""
    import optuna

    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    notes: list[str] = []
    if not completed:
        return None, ["no trial completed: no figure written"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    figure, (history, importance) = plt.subplots(1, 2, figsize=(11, 4))
    numbers = [t.number for t in completed]
    values = [float(t.value) for t in completed]
    running, best_so_far = [], None
    for value in values:
        best_so_far = value if best_so_far is None else (max if maximize else min)(best_so_far, value)
        running.append(best_so_far)
    history.scatter(numbers, values, label="trial value", color="tab:blue", s=18)
    history.step(numbers, running, where="post", label="best so far", color="tab:red")
    history.set(xlabel="trial", ylabel=study.user_attrs.get("metric", "objective"), title="Optimisation history")
    history.legend()
    parameters = {name for t in completed for name in t.params}
    if len(completed) < 2 or len(parameters) < 2:
        why = ("parameter importances need at least 2 completed trials" if len(completed) < 2
               else "parameter importances need more than one parameter")
        notes.append(why)
        importance.text(0.5, 0.5, why, ha="center", va="center", wrap=True)
        importance.set_axis_off()
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = optuna.importance.get_param_importances(study)
        names = list(scores)[::-1]
        importance.barh(names, [scores[n] for n in names], color="tab:green")
        importance.set(xlabel="importance (fANOVA)", title="Parameter importances")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path, notes
