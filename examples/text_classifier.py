"""A sentiment classifier on short texts: TextVectorization (adapted on the training texts)
+ Embedding + LSTM + Dense; runs unchanged on every backend:
UNIDL_BACKEND=numpy|torch|tensorflow python examples/text_classifier.py [epochs] [--out DIR]

The data set is SYNTHETIC: 800 short English-like sentences built here from word lists with
a fixed seed ("the acting was truly wonderful", "honestly i found the plot dull"), labelled
1 when the sentiment word is positive and 0 when it is negative; a quarter of them put "not"
before the sentiment word, which flips the label ("the film was not great" is negative), so
the model has to read word order, not only count words. It shows the pipeline, and that it
trains the same way on every backend; it says nothing about real reviews.

The strings are turned into token ids on the host (TextVectorization works in NumPy on every
backend); the model then trains on the ids with the active backend. The training curves are
saved as text_classifier_history.png in --out DIR, else $UNIDL_EXAMPLES_OUT, else the
current directory (skipped when matplotlib is missing).
"""

import argparse

import numpy as np

import unidl
from unidl import layers
from unidl.utils import save_training_pictures

SUBJECTS = ["the film", "the movie", "the plot", "the acting", "the ending", "the music",
            "the story", "the cast", "the script", "the camera work"]
OPENERS = ["", "", "honestly", "overall", "i think", "to be fair", "in the end", "sadly",
           "frankly"]
VERBS = ["was", "is", "felt", "seemed", "looked", "sounded"]
ADVERBS = ["", "", "really", "truly", "quite", "very", "rather", "so"]
POSITIVE = ["great", "wonderful", "brilliant", "moving", "excellent", "delightful", "superb",
            "charming", "fun", "beautiful", "clever", "gripping"]
NEGATIVE = ["dull", "boring", "awful", "terrible", "weak", "clumsy", "tedious", "bland",
            "annoying", "poor", "messy", "forgettable"]
ENDINGS = ["", "", "", "from start to finish", "for me", "this time", "at times", "overall"]


def make_sentences(n, seed):
    """``n`` (text, label) pairs; label 1 for positive sentiment (see the module docstring)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        positive = bool(rng.integers(2))
        negated = rng.random() < 0.25
        word = rng.choice(POSITIVE if positive else NEGATIVE)
        parts = [rng.choice(OPENERS), rng.choice(SUBJECTS), rng.choice(VERBS),
                 "not" if negated else "", rng.choice(ADVERBS), word, rng.choice(ENDINGS)]
        texts.append(" ".join(p for p in parts if p).capitalize() + rng.choice([".", "!", ""]))
        labels.append(int(positive != negated))
    return np.array(texts), np.array(labels)


def main(epochs, out=None):
    unidl.random.set_seed(0)
    texts, labels = make_sentences(800, seed=42)
    labels = labels.reshape(-1, 1).astype("float32")  # one column, as the model's output
    x_train, y_train = texts[:640], labels[:640]
    x_test, y_test = texts[640:], labels[640:]

    vectorizer = layers.TextVectorization(max_tokens=200, output_sequence_length=12)
    vectorizer.adapt(x_train)
    ids_train = vectorizer(x_train)
    ids_test = vectorizer(x_test)
    print(f"vocabulary: {vectorizer.vocabulary_size()} tokens, e.g. "
          f"{vectorizer.get_vocabulary()[:6]}")

    model = unidl.Sequential([
        layers.Embedding(vectorizer.vocabulary_size(), 16, mask_zero=True),
        layers.LSTM(24),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=unidl.optimizers.Adam(0.01), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(ids_train, y_train, epochs=epochs, batch_size=32, verbose=2)
    _, accuracy = model.evaluate(ids_test, y_test, verbose=0)
    print(f"backend={unidl.backend_name()} text classifier test accuracy={accuracy:.4f}")
    save_training_pictures("text_classifier", history, out=out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("epochs", type=int, nargs="?", default=8)
    parser.add_argument("--out", metavar="DIR", help="where to save the pictures")
    args = parser.parse_args()
    main(args.epochs, args.out)
