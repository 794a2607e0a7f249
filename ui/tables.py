"""Tables (pandas DataFrames) shared by pages."""

import pandas as pd


def experiment_table(kind, result):
    """Per-fold / per-run rows plus a mean ± std line, as a DataFrame."""
    if kind == "cv":
        rows = pd.DataFrame(result["folds"])
        summary = {"fold": "mean ± std",
                   "train_accuracy": f"{result['mean_train_accuracy']:.2%} ± {result['std_train_accuracy']:.2%}",
                   "test_accuracy": f"{result['mean_test_accuracy']:.2%} ± {result['std_test_accuracy']:.2%}"}
    else:
        rows = pd.DataFrame(result["runs"])
        summary = {"optimizer": "mean ± std",
                   "val_accuracy": f"{rows['val_accuracy'].mean():.2%} ± {rows['val_accuracy'].std(ddof=0):.2%}",
                   "test_accuracy": f"{rows['test_accuracy'].mean():.2%} ± {rows['test_accuracy'].std(ddof=0):.2%}"}
    shown = rows.copy()
    for column in ("train_accuracy", "test_accuracy", "val_accuracy"):
        if column in shown:
            shown[column] = shown[column].map(lambda v: f"{v:.2%}")
    if "seconds" in shown:
        shown["seconds"] = shown["seconds"].map(lambda v: f"{v:.0f}")
    if "learning_rate" in shown:
        shown["learning_rate"] = shown["learning_rate"].map(lambda v: f"{v:g}")
    return pd.concat([shown.astype(str), pd.DataFrame([summary])], ignore_index=True).fillna("")
