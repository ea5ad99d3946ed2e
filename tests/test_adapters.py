"""The adapter contract, checked for every registered adapter (as timm's tests run over every model): a forward pass
gives hidden states laid out like HF ``hidden_states`` (``num_layers + 1``), ``copy_blocks`` builds a model of the
requested depth whose copied blocks are the teacher's, and a saved model reloads, through its task, unchanged.

A new adapter registers a tiny model below (``FAMILIES``); an adapter without one fails
``test_every_adapter_has_a_tiny_model``."""

import pytest
import torch
from conftest import NUM_LABELS, VOCAB, tiny_bert

from hf_spectralkd.adapters import ADAPTER_REGISTRY, get_adapter
from hf_spectralkd.tasks import get_task

DEPTH = 4
COPIED = [2, 4]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _bert():
    return tiny_bert(num_layers=DEPTH, hidden=16, seed=0).eval()


def _bert_inputs():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, VOCAB, (2, 7), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _vit():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=NUM_LABELS, img_size=16,
                             patch_size=8, embed_dim=16, depth=DEPTH, num_heads=2).eval()


def _vit_inputs():
    return {"pixel_values": torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))}


# adapter name -> (tiny model, a batch of its inputs, the prefix of its block list in the state dict)
FAMILIES = {
    "transformers": (_bert, _bert_inputs, "bert.encoder.layer"),
    "timm": (_vit, _vit_inputs, "blocks"),
}


def test_every_adapter_has_a_tiny_model():
    missing = sorted(set(ADAPTER_REGISTRY) - set(FAMILIES))
    assert not missing, f"adapters without a tiny model in tests/test_adapters.py FAMILIES: {missing}"


def _family(name):
    build, inputs, prefix = FAMILIES[name]
    model = build()
    adapter = get_adapter(model)
    assert adapter.name == name and isinstance(adapter, ADAPTER_REGISTRY[name])
    return model, adapter, inputs(), prefix


@pytest.mark.parametrize("name", sorted(ADAPTER_REGISTRY))
def test_forward_returns_hidden_states_of_every_layer(name):
    model, adapter, inputs, _ = _family(name)
    assert adapter.num_layers(model) == DEPTH
    with torch.no_grad():
        out = adapter.forward(model, inputs, output_hidden_states=True)
    assert len(out.hidden_states) == DEPTH + 1  # embeddings + one per block
    assert out.logits.shape == (2, NUM_LABELS)
    assert all(h.shape[0] == 2 for h in out.hidden_states)
    assert adapter.describe(model)["num_layers"] == DEPTH


def _block_tensors(model, prefix, block):
    start = f"{prefix}.{block}."
    return {k[len(start):]: v for k, v in model.state_dict().items() if k.startswith(start)}


@pytest.mark.parametrize("name", sorted(ADAPTER_REGISTRY))
def test_copy_blocks_builds_the_requested_depth_from_the_teachers_blocks(name):
    teacher, adapter, inputs, prefix = _family(name)
    student = adapter.copy_blocks(teacher, COPIED)
    assert get_adapter(student).name == name and adapter.num_layers(student) == len(COPIED)
    for j, block in enumerate(COPIED):
        copied, original = _block_tensors(student, prefix, j), _block_tensors(teacher, prefix, block - 1)
        assert copied and copied.keys() == original.keys()
        for key, value in copied.items():
            assert torch.equal(value, original[key]), f"block {j} <- teacher block {block}: {key} differs"
    outside = {k: v for k, v in student.state_dict().items() if not k.startswith(f"{prefix}.")}
    teacher_tensors = teacher.state_dict()
    assert outside and all(torch.equal(v, teacher_tensors[k]) for k, v in outside.items())
    assert all(p.data_ptr() not in {q.data_ptr() for q in teacher.parameters()} for p in student.parameters())
    with torch.no_grad():
        out = adapter.forward(student.eval(), inputs, output_hidden_states=True)
    assert len(out.hidden_states) == len(COPIED) + 1
    with pytest.raises(ValueError, match=rf"init_layers \[{DEPTH + 1}\] out of range: the teacher has {DEPTH} blocks"):
        adapter.copy_blocks(teacher, [1, DEPTH + 1])


@pytest.mark.parametrize("name", sorted(ADAPTER_REGISTRY))
def test_save_and_reload_through_the_task(name, tmp_path):
    model, adapter, inputs, _ = _family(name)
    task = get_task(adapter.task)
    task.save_model(model, str(tmp_path))  # the adapter's save: the one saving path
    reloaded = task.load_classifier(None, str(tmp_path)).eval()
    assert type(reloaded) is type(model) and get_adapter(reloaded).name == name
    saved, loaded = model.state_dict(), reloaded.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    with torch.no_grad():
        before = adapter.forward(model, inputs, output_hidden_states=False).logits
        after = get_adapter(reloaded).forward(reloaded, inputs, output_hidden_states=False).logits
    torch.testing.assert_close(after, before)
