"""The sentences of the model card live in templates/model_card.md.jinja; cards/values.py only computes values.
Each branch of the template's wording, rendered from a recipe run's results (no model needed)."""

import copy

import pytest
from test_results import RUN_RESULTS

from hf_spectralkd.cards import build_model_card
from hf_spectralkd.cards.values import card_values


def _card(change=None, **kwargs) -> str:
    results = copy.deepcopy(RUN_RESULTS)
    (change or (lambda r: None))(results)
    return str(build_model_card(results, **kwargs))


def test_values_hold_no_sentences():
    values = card_values(RUN_RESULTS, "tiny")
    assert values["speedup"] == {"ratio": "1.01", "student": "318.6", "teacher": "315.6"}
    assert values["size_ratio"] == {"ratio": "1.02", "share": "98.3%"}
    assert values["layer_map"]["pairs"] == [  # results without a measured entropy (written before it existed)
        {"student": 1, "teacher": 3, "intensity": "0.15367", "entropy": "n/a"},
        {"student": 2, "teacher": 4, "intensity": "0.15374", "entropy": "n/a"},
    ]
    assert not values["layer_map"]["has_entropy"]
    assert values["no_baseline"] and not values["no_metrics"] and not values["teacher_not_evaluated"]
    assert values["usage"] == {
        "vision": False,
        "from_hub": False,
        "where": "path/to/this/model",
        "example": '"how do I freeze my bank account?"',
    }


def test_origin_notes_init_and_training_sentences():
    text = _card(lambda r: r.update(smoke=True))
    assert (
        "- The teacher is not a Hub model (`runs/tiny/tiny_bert`; the trained teacher is at `runs/tiny/run/teacher`), "
        "so the card names it here instead of in the `base_model` metadata.\n- **Smoke run**:"
    ) in text
    assert (
        "- Training data: `runs/tiny/data`; not a Hub dataset, so the `datasets` metadata is left out.\n\n## Teacher"
        in text
    )
    assert "The student was initialised from the teacher's embeddings and blocks [2, 4]." in text
    assert (
        "**Speed-up: 1.01x** the teacher's inference throughput (318.6 vs 315.6 samples/s, measured in the same run); "
        "1.02x fewer parameters (98.3% of the teacher)." in text
    )
    assert "The teacher was trained on the training split (48 labelled examples) of clinc150-3; its per-layer" in text
    assert "unlabelled transfer texts" not in text and "augmented copies" not in text
    assert (
        "(a `transformers.Trainer`); the checkpoint was evaluated on the test split. "
        "Recipe: `runs/tiny/recipe.yaml` (`tiny_lora`)." in text
    )

    def hub_teacher(r):
        r["teacher"].update(source="org/teacher")
        r["student"].update(init="pretrained", source="org/small", throughput_samples_per_s=None)
        r["training"]["teacher_finetune"] = None
        r["dataset"].update(source="org/intents", license="mit")
        r["baseline"] = copy.deepcopy(r["student"])

    text = _card(hub_teacher)
    assert "- The teacher is not a Hub model" not in text and "- Training data" not in text
    assert (
        "teacher [`org/teacher`](https://huggingface.co/org/teacher), on [clinc150-3](https://huggingface.co/datasets/org/intents)."
        in text
    )
    assert "The student was initialised from pretrained weights (`org/small`)." in text
    assert "Speed-up: throughput was not measured for this run; 1.02x fewer parameters" in text
    assert "The teacher was given already trained; its per-layer" in text
    assert (
        "`transformers.Trainer`) and the no-KD baseline with the same settings and plain cross-entropy; the checkpoint"
        in text
    )
    text = _card(lambda r: r["student"].update(init="config"))
    assert "The student was initialised from scratch (random weights from a config)." in text


@pytest.mark.parametrize(
    "strategy, phrase",
    [
        ("topk", "the teacher layers with the highest spectral intensity (`topk`)"),
        ("ends", "the best first and last teacher layers by total intensity (`ends`)"),
        ("uniform", "evenly spaced teacher layers (`uniform`)"),
        ("manual", "teacher layers given by hand (`manual`)"),
        ("custom", "strategy `custom`"),
    ],
)
def test_layer_map_sentence_names_the_strategy(strategy, phrase):
    text = _card(lambda r: r["layer_map"].update(strategy=strategy))
    assert f"l = output of block l). The 2 teacher layers were chosen as {phrase}.\n" in text
    assert "0: 0.15362, 1: 0.15364, 2: 0.15365, **3: 0.15367**, **4: 0.15374**\n" in text


def test_no_layer_map_and_result_notes():
    def bare(r):
        r["layer_map"] = {}
        r["teacher"]["metrics"] = {}

    text = _card(bare)
    assert (
        "## Layer map\n\nNo layers were aligned in this run (beta = 0 or no layer map): the student learned from "
        "the teacher's logits only.\n\n## Distillation" in text
    )
    assert (
        "\n\nNo no-KD baseline was trained in this run. The teacher was not evaluated in this run.\n\n## How to use"
        in text
    )

    def no_metrics(r):
        for role in ("teacher", "student"):
            r[role]["metrics"] = {}

    text = _card(no_metrics)
    assert (
        "| model | (no metrics) |\n|---|---|\n\nNo evaluation metrics were recorded for this run.\n\n## How to use"
        in text
    )


def test_usage_snippets():
    text = _card(usage_path="runs/tiny/run/student")
    assert (
        '```python\nfrom transformers import pipeline\n\nclassifier = pipeline("text-classification", '
        'model="runs/tiny/run/student")\nprint(classifier("how do I freeze my bank account?", top_k=3))\n```'
    ) in text
    text = _card(lambda r: r.update(task="image-classification", usage_example="unused"), usage_path="runs/v/student")
    assert (
        '```python\nimport timm\nimport torch\n\n'
        'model = timm.create_model("local-dir:runs/v/student", pretrained=True)' in text
    )
    assert "print(logits.softmax(-1).topk(3))\n```" in text
    assert "timm `runs/tiny/tiny_bert`" in text


def test_training_sentence_of_a_transfer_set_run_counts_labelled_and_unlabelled_rows():
    """data.labels_per_class + data.transfer (+ data.augment): the teacher and the no-KD baseline learned from the
    labelled rows only; the card must not say the teacher saw every training text."""

    def transfer(r):
        r["dataset"].update(labelled_train_rows=1500, transfer_rows=13500)
        r["dataset"]["splits"]["train"] = 15000
        r["baseline"] = copy.deepcopy(r["student"])

    text = _card(transfer)
    assert "The teacher was trained on the training split (1,500 labelled examples) of clinc150-3" in text
    assert (
        "evaluated on the test split. The student also learned from 13,500 unlabelled transfer texts, labelled by the "
        "teacher (soft targets); its cross-entropy term used the labelled rows only, and the no-KD baseline saw only "
        "those." in text
    )

    def both(r):
        transfer(r)
        r["dataset"]["augmented_rows"] = 3000
        del r["baseline"]

    text = _card(both)
    assert (
        "The student also learned from 13,500 unlabelled transfer texts and 3,000 augmented copies of the labelled "
        "texts, labelled by the teacher (soft targets); its cross-entropy term used the labelled rows only." in text
    )
