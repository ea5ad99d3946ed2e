"""Distillation-aware model cards for SpectralKD students.

The card is rendered from ``templates/model_card.md.jinja`` with ``huggingface_hub.ModelCard.from_template``
and a ``ModelCardData`` (library, tags, teacher as ``base_model`` when it is a Hub id, datasets, license and a
``model-index`` with the student's measured metrics and the split they were measured on). Everything it says
comes from a run's results (:class:`hf_spectralkd.results.RunResults`, the ``results.json`` format) or, for
``trainer.push_to_hub()``, from what the trainer knows (:func:`hf_spectralkd.results.results_from_trainer`).

TRL's shape, in three files: ``values.py`` computes the values (a section builder per card section),
``templates/model_card.md.jinja`` holds the sentences, ``writer.py`` renders and writes; ``metadata.py`` builds
the YAML metadata and merges an existing README; ``validation.py`` checks a card offline.

Existing README.md (PEFT style: touch only what we own). The generated body sits between
``<!-- hf_spectralkd:card:start -->`` and ``<!-- hf_spectralkd:card:end -->``; regenerating replaces only that
block and keeps any text the user wrote before or after it. A README without the markers that the user wrote is
kept too: the generated block is appended after it. (The draft ``transformers.Trainer`` writes, recognisable by
its "generated automatically" comment, is replaced.) In the metadata we overwrite the keys we own
(``library_name``, ``pipeline_tag``, ``base_model``, ``datasets``, ``metrics``, ``model-index``), add our tags
to the user's, and keep every other key, including a ``license`` or ``language`` the user set.
"""

from .metadata import END_MARKER, START_MARKER
from .validation import validate_model_card
from .writer import TEMPLATE_PATH, build_model_card, write_model_card, write_trainer_model_card

__all__ = [
    "END_MARKER",
    "START_MARKER",
    "TEMPLATE_PATH",
    "build_model_card",
    "validate_model_card",
    "write_model_card",
    "write_trainer_model_card",
]
