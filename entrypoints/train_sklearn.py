"""Tabular classification with scikit-learn: the same script locally and on every cloud.

Data: a CSV file (or a directory holding CSV files) given as the input named ``train``, with a
header row and the label in the column named by the ``target`` hyperparameter (default: the last
column). Without an input it trains offline on a dataset shipped with scikit-learn (``dataset``:
digits, iris, wine or breast_cancer).

What it does, in order: a stratified 80/10/10 train/validation/test split with a fixed seed;
missing values imputed (median for numbers, most frequent for categories) and numeric features
scaled to [0, 1], both fitted on the training split only; categorical columns one-hot encoded; a
random forest with the spec's hyperparameters; accuracy and macro F1 on validation and test,
logged through ``log_metric``; the fitted pipeline saved to the model directory.

Hyperparameters: n_estimators (200), max_depth (none), min_samples_leaf (1), max_features
("sqrt"), class_weight (none, or "balanced"), seed (0), target, dataset ("digits").
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import joblib
import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder

from cloudtrain.runtime import context

MISSING = {"", "na", "nan", "null", "none", "?"}


def read_csv(path: Path, target: str | None) -> tuple[np.ndarray, np.ndarray, list[str], list[bool]]:
    """Features (object array), labels, feature names and which features are numeric."""
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise SystemExit(f"no CSV file in {path}")
    header: list[str] | None = None
    rows: list[list[str]] = []
    for file in files:
        with open(file, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            file_header = next(reader)
            if header is not None and file_header != header:
                raise SystemExit(f"{file}: its columns differ from those of {files[0]}")
            header = file_header
            rows.extend(row for row in reader if row)
    assert header is not None
    target = target or header[-1]
    if target not in header:
        raise SystemExit(f"target column {target!r} is not in {header}")
    label_at = header.index(target)
    data = np.array(rows, dtype=object)
    labels = data[:, label_at]
    features = np.delete(data, label_at, axis=1)
    names = [h for i, h in enumerate(header) if i != label_at]
    numeric = []
    for column in range(features.shape[1]):
        values = [v for v in features[:, column] if str(v).strip().lower() not in MISSING]
        try:
            [float(v) for v in values]
            numeric.append(True)
        except ValueError:
            numeric.append(False)
    for column, is_number in enumerate(numeric):
        cells = features[:, column]
        missing = np.array([str(v).strip().lower() in MISSING for v in cells])
        if is_number:
            features[:, column] = np.where(missing, np.nan, [float(v) if not m else 0.0 for v, m in zip(cells, missing)])
        else:
            features[:, column] = np.where(missing, None, cells)
    return features, labels, names, numeric


def load_builtin(name: str) -> tuple[np.ndarray, np.ndarray, list[str], list[bool]]:
    from sklearn import datasets

    loaders = {"digits": datasets.load_digits, "iris": datasets.load_iris, "wine": datasets.load_wine,
               "breast_cancer": datasets.load_breast_cancer}
    if name not in loaders:
        raise SystemExit(f"unknown dataset {name!r}; choose one of {sorted(loaders)}")
    bunch = loaders[name]()
    x = bunch.data.astype(object)
    names = [str(n) for n in getattr(bunch, "feature_names", range(x.shape[1]))]
    return x, bunch.target, names, [True] * x.shape[1]


def split_80_10_10(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    """Stratified train/validation/test split, 80/10/10, fixed by ``seed``."""
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed)
    return x_train, x_val, x_test, y_train, y_val, y_test


def build_pipeline(numeric: list[bool], ctx) -> Pipeline:  # type: ignore[no-untyped-def]
    numbers = [i for i, n in enumerate(numeric) if n]
    categories = [i for i, n in enumerate(numeric) if not n]
    preprocess = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), MinMaxScaler()), numbers),
        ("categories", make_pipeline(SimpleImputer(strategy="most_frequent", missing_values=None),
                                     OneHotEncoder(handle_unknown="ignore")), categories),
    ])
    max_depth = ctx.hp("max_depth", 0) or None
    class_weight = ctx.hyperparameters.get("class_weight") or None
    forest = RandomForestClassifier(
        n_estimators=ctx.hp("n_estimators", 200), max_depth=max_depth,
        min_samples_leaf=ctx.hp("min_samples_leaf", 1), max_features=ctx.hp("max_features", "sqrt"),
        class_weight=class_weight, random_state=ctx.hp("seed", 0), n_jobs=-1,
    )
    return Pipeline([("preprocess", preprocess), ("forest", forest)])


def main() -> None:
    ctx = context()
    seed = ctx.hp("seed", 0)
    source = ctx.inputs.get("train")
    if source is not None:
        x, y, names, numeric = read_csv(Path(source), ctx.hyperparameters.get("target"))
        described = str(source)
    else:
        dataset = ctx.hp("dataset", "digits")
        x, y, names, numeric = load_builtin(dataset)
        described = f"scikit-learn {dataset}"
    print(f"data: {described}: {x.shape[0]} rows, {x.shape[1]} features, {len(set(y.tolist()))} classes", flush=True)
    x_train, x_val, x_test, y_train, y_val, y_test = split_80_10_10(x, y, seed)
    print(f"split: train {len(y_train)}, validation {len(y_val)}, test {len(y_test)}", flush=True)

    model = build_pipeline(numeric, ctx)
    model.fit(x_train, y_train)
    results = {}
    for split, (xs, ys) in {"val": (x_val, y_val), "test": (x_test, y_test)}.items():
        predicted = model.predict(xs)
        results[f"{split}_accuracy"] = float(accuracy_score(ys, predicted))
        results[f"{split}_f1"] = float(f1_score(ys, predicted, average="macro"))
    for name, value in results.items():
        ctx.log_metric(name, value)

    if ctx.is_main:
        ctx.model_dir.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, ctx.model_dir / "model.joblib")
        (ctx.model_dir / "features.json").write_text(json.dumps({"features": names, "classes": sorted(map(str, set(y.tolist())))}))
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        (ctx.output_dir / "summary.json").write_text(json.dumps(results, indent=2))
    print(f"validation accuracy {results['val_accuracy']:.4f}, test accuracy {results['test_accuracy']:.4f}", flush=True)


if __name__ == "__main__":
    main()
