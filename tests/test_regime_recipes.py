"""The shipped regime recipes (R1 low-label, R3 narrow scratch student) run end to end in --smoke form."""

import json
import os

import pytest

from hf_spectralkd.pipeline import run_pipeline
from hf_spectralkd.recipes import load_recipe

RECIPES = os.path.join(os.path.dirname(__file__), "..", "recipes")


@pytest.mark.parametrize(
    "name, overrides, check",
    [
        # smoke keeps 256 training rows: 1 labelled row per intent leaves the rest as the transfer set
        ("clinc150_lowlabel", [("data.labels_per_class", 1)],
         lambda r: r["dataset"]["labelled_train_rows"] < 256 and r["dataset"]["transfer_rows"] > 0),
        ("clinc150_scratch", [],
         lambda r: not r["dataset"].get("augmented_rows") and r["dataset"]["labelled_train_rows"] == 256
         and r["student"]["hidden_size"] == 256 and r["student"]["num_layers"] == 4),
    ],
)
def test_regime_recipe_smoke(tmp_path, name, overrides, check):
    recipe = load_recipe(os.path.join(RECIPES, f"{name}.yaml"),
                         overrides=[*overrides, ("output.dir", str(tmp_path / "run"))], smoke_run=True)
    results = run_pipeline(recipe, log=lambda line: None)
    assert check(results), results["dataset"]
    saved = json.load(open(tmp_path / "run" / "results.json"))
    assert saved["baseline"] is not None and os.path.isfile(tmp_path / "run" / "student" / "README.md")
    assert os.path.isfile(tmp_path / "run" / "teacher_cache" / "cache_meta.json")
    assert saved["recommended"]["model"] in ("student", "baseline") and saved["recommended"]["split"] == "validation"


def test_every_shipped_recipe_validates():
    """Every recipe under recipes/ (the MPNet one included: validation does not resolve packaged models)."""
    names = sorted(f for f in os.listdir(RECIPES) if f.endswith(".yaml"))
    assert {"clinc150_lowlabel.yaml", "clinc150_scratch.yaml", "clinc150_mpnet.yaml"} <= set(names)
    for name in names:
        recipe = load_recipe(os.path.join(RECIPES, name))
        assert recipe.name == name[: -len(".yaml")]
    mpnet = load_recipe(os.path.join(RECIPES, "clinc150_mpnet.yaml"))
    assert mpnet.teacher.base == "packaged:mpnet" and mpnet.data.transfer.max_samples == 3000
