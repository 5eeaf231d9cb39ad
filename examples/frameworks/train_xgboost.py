"""Gradient-boosted trees on the 8x8 digits shipped with scikit-learn, with metrics through the runtime context."""

import argparse
import os

import xgboost as xgb
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from cloudtrain.runtime import context

parser = argparse.ArgumentParser()
parser.add_argument("--num_round", type=int, default=100)
parser.add_argument("--max_depth", type=int, default=4)
parser.add_argument("--eta", type=float, default=0.3)
args, _ = parser.parse_known_args()
ctx = context()
x, y = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
train, test = xgb.DMatrix(x_train, label=y_train), xgb.DMatrix(x_test, label=y_test)
params = {"objective": "multi:softmax", "num_class": 10, "max_depth": args.max_depth, "eta": args.eta, "eval_metric": "merror"}
evals: dict = {}
booster = xgb.train(params, train, args.num_round, evals=[(test, "test")], evals_result=evals, verbose_eval=False)
for step, error in enumerate(evals["test"]["merror"]):
    ctx.log_metric("test_error", error, step)
ctx.log_metric("test_accuracy", 1 - evals["test"]["merror"][-1])
if ctx.is_main:
    booster.save_model(os.path.join(ctx.model_dir, "model.json"))
