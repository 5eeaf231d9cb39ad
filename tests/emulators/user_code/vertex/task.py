"""A training script as a user writes it for a Vertex AI prebuilt container: it trains a small
scikit-learn model and saves it where Vertex says, AIP_MODEL_DIR (a gs:// URI), with
google-cloud-storage."""

import argparse
import os
import pickle

from google.cloud import storage
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()

digits = load_digits()
model = SGDClassifier(max_iter=args.epochs, tol=None, random_state=0)
model.fit(digits.data, digits.target)
accuracy = model.score(digits.data, digits.target)
print(f"trained for {args.epochs} epochs: accuracy {accuracy:.3f}")

model_dir = os.environ["AIP_MODEL_DIR"]
bucket_name, _, prefix = model_dir[len("gs://"):].partition("/")
bucket = storage.Client().bucket(bucket_name)
bucket.blob(prefix + "model.pkl").upload_from_string(pickle.dumps(model))
bucket.blob(prefix + "metrics.txt").upload_from_string(f"epochs={args.epochs} accuracy={accuracy:.3f}\n")
print("saved the model to", model_dir + "model.pkl")
