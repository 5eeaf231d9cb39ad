"""A small Keras CNN on MNIST (downloaded by tf.keras.datasets), with metrics through the runtime context."""

import argparse
import os

import tensorflow as tf

from cloudtrain.runtime import context

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--lr", type=float, default=0.001)
args, _ = parser.parse_known_args()
ctx = context()
(x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
x_train, x_test = x_train[..., None] / 255.0, x_test[..., None] / 255.0
model = tf.keras.Sequential([
    tf.keras.layers.Conv2D(16, 3, activation="relu"), tf.keras.layers.MaxPooling2D(),
    tf.keras.layers.Flatten(), tf.keras.layers.Dense(10),
])
model.compile(optimizer=tf.keras.optimizers.Adam(args.lr),
              loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=args.epochs, validation_split=0.1, verbose=2)
for step, value in enumerate(history.history["val_loss"]):
    ctx.log_metric("val_loss", value, step)
_, accuracy = model.evaluate(x_test, y_test, verbose=0)
ctx.log_metric("test_accuracy", accuracy)
if ctx.is_main:
    model.save(os.path.join(ctx.model_dir, "model.keras"))
