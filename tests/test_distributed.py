"""Two CPU processes (gloo) through torchrun: same layers on every rank, losses averaged, one model saved."""

import json
import os
import socket
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(HERE), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), os.path.join(HERE, "distributed_worker.py"), str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    ranks = []
    for r in range(2):
        with open(out / f"rank{r}.json", encoding="utf-8") as handle:
            ranks.append(json.load(handle))
    return out, ranks


def test_two_processes_really_ran(two_rank_run):
    _, ranks = two_rank_run
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 for r in ranks)
    # the frozen teacher is replicated, not wrapped in DistributedDataParallel
    assert all(r["teacher_wrapped"] == "BertForSequenceClassification" for r in ranks)


def test_layer_selection_is_rank_zeros_on_every_rank(two_rank_run):
    out, ranks = two_rank_run
    # rank 1 sees a reversed profile, so on its own it would align different layers ...
    assert ranks[0]["local_choice"] != ranks[1]["local_choice"]
    # ... but rank 0's LayerMap is broadcast and used everywhere
    assert ranks[0]["layer_map"] == ranks[1]["layer_map"]
    assert ranks[0]["layer_map"]["teacher_layers"] == ranks[0]["local_choice"]
    with open(out / "run" / "layer_map.json", encoding="utf-8") as handle:
        assert json.load(handle)["teacher_layers"] == ranks[0]["local_choice"]


def test_logged_loss_components_are_averaged_over_ranks(two_rank_run):
    _, ranks = two_rank_run
    history = ranks[0]["log_history"]
    assert len(history) == 3 and history == ranks[1]["log_history"]
    for step, entry in enumerate(history):
        for key in ("ce_loss", "kd_loss", "freq_loss"):
            local = [r["local_steps"][step][key] for r in ranks]
            assert local[0] != local[1], "ranks saw different batches, so their local values differ"
            assert entry[key] == pytest.approx(sum(local) / 2, rel=1e-5, abs=1e-8)


def test_one_model_saved_by_rank_zero(two_rank_run):
    out, ranks = two_rank_run
    assert ranks[0]["model_writes"] == ["model.safetensors"]
    assert ranks[1]["model_writes"] == []
    weights = [f for f in os.listdir(out / "run") if f.endswith(".safetensors")]
    assert weights == ["model.safetensors"]
    # DDP kept the replicas in sync: the single saved model is every rank's model
    assert ranks[0]["param_checksum"] == pytest.approx(ranks[1]["param_checksum"], rel=1e-9)
    from safetensors.torch import load_file

    saved = load_file(str(out / "run" / "model.safetensors"))
    assert float(sum(t.double().sum() for t in saved.values())) == pytest.approx(ranks[0]["param_checksum"], rel=1e-6)
