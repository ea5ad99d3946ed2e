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
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        os.path.join(HERE, "distributed_worker.py"),
        str(out),
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


def test_an_epoch_is_split_between_the_ranks(two_rank_run):
    _, ranks = two_rank_run
    assert [r["epoch_steps"] for r in ranks] == [6, 6]  # 48 rows / (2 ranks x 4 per device); one process: 12


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


def _teacher(hidden_size=64):
    from conftest import tiny_bert

    return tiny_bert(num_layers=2, hidden=hidden_size)


def test_teacher_deepspeed_config_zero3_shards_and_fills_auto_buckets():
    from hf_spectralkd.distributed import teacher_deepspeed_config

    student_config = {
        "train_micro_batch_size_per_gpu": 8,
        "bf16": {"enabled": True},
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-4}},
        "scheduler": {"type": "WarmupLR"},
        "zero_optimization": {
            "stage": 3,
            "reduce_bucket_size": "auto",
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": 1234,
        },
    }
    config = teacher_deepspeed_config(student_config, _teacher(64))
    zero = config["zero_optimization"]
    assert zero["stage"] == 3  # the teacher is sharded like the student
    assert zero["reduce_bucket_size"] == 64 * 64
    assert zero["stage3_prefetch_bucket_size"] == int(0.9 * 64 * 64)
    assert zero["stage3_param_persistence_threshold"] == 1234  # an explicit value is kept
    assert "optimizer" not in config and "scheduler" not in config
    assert not any("." in key for key in config)  # no dotted keys DeepSpeed would ignore
    assert config["bf16"] == {"enabled": True} and config["train_micro_batch_size_per_gpu"] == 8
    assert student_config["zero_optimization"]["reduce_bucket_size"] == "auto"  # the student's config is untouched


@pytest.mark.parametrize("stage", [0, 1, 2])
def test_teacher_deepspeed_config_replicates_below_zero3(stage):
    from hf_spectralkd.distributed import teacher_deepspeed_config

    config = teacher_deepspeed_config(
        {"zero_optimization": {"stage": stage, "offload_optimizer": {"device": "cpu"}}}, _teacher()
    )
    assert config["zero_optimization"]["stage"] == 0
    assert teacher_deepspeed_config({}, _teacher())["zero_optimization"]["stage"] == 0


def test_prepare_teacher_single_process_is_frozen_and_unwrapped():
    from accelerate import Accelerator

    from hf_spectralkd.distributed import prepare_teacher

    teacher = _teacher()
    prepared = prepare_teacher(teacher, Accelerator(cpu=True), False, False)
    assert prepared is teacher and not prepared.training
    assert not any(p.requires_grad for p in prepared.parameters())


ACCELERATE_CONFIGS = {
    "single_gpu_bf16.yaml": ("NO", None),
    "multi_gpu_ddp.yaml": ("MULTI_GPU", None),
    "fsdp.yaml": ("FSDP", None),
    "deepspeed_zero2.yaml": ("DEEPSPEED", 2),
    "deepspeed_zero3.yaml": ("DEEPSPEED", 3),
}


@pytest.mark.parametrize("name", sorted(ACCELERATE_CONFIGS))
def test_accelerate_recipes_parse_and_are_documented(name):
    from accelerate.commands.config.config_args import load_config_from_file

    path = os.path.join(os.path.dirname(HERE), "recipes", "accelerate", name)
    config = load_config_from_file(path)
    kind, stage = ACCELERATE_CONFIGS[name]
    assert config.distributed_type.value == kind
    assert config.mixed_precision == "bf16"
    if stage is not None:
        assert config.deepspeed_config["zero_stage"] == stage
    if kind == "FSDP":
        assert config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # one ordinary model file on save
    # documented: a row of the config table in docs/scaling.md
    with open(os.path.join(os.path.dirname(HERE), "docs", "scaling.md"), encoding="utf-8") as handle:
        rows = [line for line in handle if line.startswith("| `")]
    assert any(row.startswith(f"| `{name}` |") for row in rows), f"docs/scaling.md has no table row for {name}"


DUPLICATE_WORKER = """
import os, sys
sys.path.insert(0, {tests!r})
from conftest import make_token_rows, pad_collate, small_config, tiny_bert
from datasets import Dataset
from hf_spectralkd import SpectralDistillationTrainer
try:
    SpectralDistillationTrainer(model=tiny_bert(2, 16, seed=1), teacher_model=tiny_bert(4, 32),
                                args=small_config(__import__("pathlib").Path({out!r}), use_cpu=False),
                                train_dataset=Dataset.from_list(make_token_rows(8)), data_collator=pad_collate)
except RuntimeError as exc:
    # one write(2) per process: the two ranks share the pipe, and print() may interleave their lines
    os.write(2, ("REFUSED rank " + os.environ.get("RANK", "?") + ": " + str(exc) + "\\n").encode())
    sys.exit(3)
print("STARTED")
"""


def test_torchrun_without_use_cpu_stops_instead_of_training_duplicates(tmp_path):
    """Without use_cpu=True on a CPU machine each torchrun process is a world of one: refused, nothing written."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("on a GPU machine the processes do join one group")
    script = tmp_path / "worker.py"
    script.write_text(DUPLICATE_WORKER.format(tests=HERE, out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "STARTED" not in output, output[-3000:]
    message = ": 2 processes were launched (WORLD_SIZE=2) but this one runs alone"
    assert output.count(f"REFUSED rank 0{message}") == 1 and output.count(f"REFUSED rank 1{message}") == 1, output
    assert "use_cpu=True" in output and not (tmp_path / "out").exists()
