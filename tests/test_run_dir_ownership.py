"""Files the run did not make are never replaced (issue: data loss): the user's own results.json / summary.md /
evaluation/ in output.dir, the root or home directory, a symlinked stage folder, a truncated card on a kill, and a
cache build's X.building folder. Each is refused before any work, naming the file, and left byte-identical."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from hf_spectralkd.constants import RUN_MARKER
from hf_spectralkd.pipeline.state import check_run_files, check_stage_folders, mark_run_dir


def test_the_users_own_run_files_in_output_dir_are_refused(tmp_path):
    (tmp_path / "results.json").write_text('{"mine": 1}')
    (tmp_path / "summary.md").write_text("my notes")
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / "teacher.json").write_text("{}")
    with pytest.raises(ValueError, match=r"holds results.json, summary.md, evaluation, which this run would replace, "
                                         r"but no hf-spectralkd run wrote them .*nothing was changed"):
        check_stage_folders(str(tmp_path))
    assert (tmp_path / "results.json").read_text() == '{"mine": 1}'
    assert (tmp_path / "summary.md").read_text() == "my notes"


def test_a_folder_with_only_unrelated_files_or_a_marked_run_is_accepted(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    check_run_files(str(tmp_path))  # nothing the run would replace
    (tmp_path / "summary.md").write_text("an earlier run's")
    mark_run_dir(str(tmp_path))
    assert (tmp_path / RUN_MARKER).is_file()
    check_run_files(str(tmp_path))


def test_a_run_from_before_the_marker_is_recognised(tmp_path):
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "stage_done.json").write_text('{"stage": "teacher"}')
    (tmp_path / "summary.md").write_text("that run's summary")
    check_stage_folders(str(tmp_path))


@pytest.mark.parametrize("where", ["/", "~"])
def test_root_and_home_are_refused(where):
    with pytest.raises(ValueError, match="is the filesystem root or your home directory"):
        check_run_files(os.path.expanduser(where))


def test_a_symlinked_stage_folder_is_refused_before_any_work(tmp_path):
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "stage_done.json").write_text('{"stage": "teacher"}')
    out = tmp_path / "run"
    out.mkdir()
    os.symlink(real, out / "teacher")
    with pytest.raises(ValueError, match=r"teacher is a symbolic link: .*nothing was done"):
        check_stage_folders(str(out))
    assert (real / "stage_done.json").is_file()


def test_the_dry_run_refuses_output_dir_holding_the_users_results(tmp_path, capsys):
    import yaml

    from hf_spectralkd.cli import main

    recipe = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "recipes", "clinc150_minilm.yaml")))
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.json").write_text('{"my": "numbers"}')
    recipe["data"]["source"] = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "hf_spectralkd", "data",
                                                            "clinc150"))
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    code = main(["distill", "--config", str(path), "--dry-run", f"output.dir={out}"])
    assert code not in (0, None)
    assert "holds results.json, which this run would replace" in capsys.readouterr().err
    assert (out / "results.json").read_text() == '{"my": "numbers"}'


KILLED_WRITER = textwrap.dedent("""
    import os, sys, time
    import hf_spectralkd.utils as utils
    real_open = open
    def slow_open(path, *args, **kwargs):
        handle = real_open(path, *args, **kwargs)
        if str(path).endswith(".tmp"):
            class Slow:
                def __enter__(self): return self
                def __exit__(self, *a): handle.close()
                def write(self, text):
                    handle.write(text[:10]); handle.flush(); print("WRITING", flush=True); time.sleep(30)
            return Slow()
        return handle
    import builtins
    builtins.open = slow_open
    utils.write_text(sys.argv[1], "a brand new card " * 100)
""")


def test_a_kill_while_the_card_is_written_leaves_the_old_card_whole(tmp_path):
    card = tmp_path / "README.md"
    card.write_text("---\nlicense: mit\n---\nmy own section\n")
    before = card.read_bytes()
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(card)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "WRITING"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert card.read_bytes() == before


def test_a_cache_build_never_removes_a_building_folder_it_did_not_make(tmp_path):
    from conftest import make_token_rows, pad_collate, tiny_bert
    from datasets import Dataset

    from hf_spectralkd.teacher_cache import add_example_ids, build_teacher_cache

    users = tmp_path / "cache.building"
    users.mkdir()
    (users / "precious.txt").write_text("mine")
    import torch

    def collate(rows):
        return {**pad_collate(rows), "example_id": torch.tensor([r["example_id"] for r in rows])}

    data = add_example_ids(Dataset.from_list(make_token_rows(8)))
    cache = build_teacher_cache(tiny_bert(num_layers=2), data, collate, [1, 2], str(tmp_path / "cache"))
    assert len(cache) == 8
    assert (users / "precious.txt").read_text() == "mine"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".cache.building")]  # its own temp folder is gone


def test_a_changed_transfer_file_changes_the_data_fingerprint(tmp_path):
    import json as json_module

    import yaml

    from hf_spectralkd.pipeline.plan import data_fingerprint
    from hf_spectralkd.recipes import load_recipe

    root = os.path.join(os.path.dirname(__file__), "..")
    recipe = yaml.safe_load(open(os.path.join(root, "recipes", "clinc150_lowlabel.yaml")))
    transfer = tmp_path / "unlabelled.jsonl"
    transfer.write_text(json_module.dumps({"text": "wake me up at seven"}) + "\n")
    recipe["data"]["source"] = os.path.abspath(os.path.join(root, "hf_spectralkd", "data", "clinc150"))
    recipe["data"]["transfer"] = {"source": str(transfer)}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    before = data_fingerprint(load_recipe(path))
    stat = os.stat(transfer)
    transfer.write_text(json_module.dumps({"text": "play some jazz please"}) + "\n")
    os.utime(transfer, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: only the bytes changed
    after = data_fingerprint(load_recipe(path))
    assert before["files"]["transfer.source"] != after["files"]["transfer.source"]
    assert before != after


def test_a_rewritten_file_with_its_mtime_kept_is_read_anew(tmp_path):
    """datasets' cache keys a JSON file on path and mtime; the task reads it by content."""
    from hf_spectralkd.tasks.sources import read_rows

    data = tmp_path / "rows.jsonl"
    data.write_text("".join(f'{{"text": "row {i}", "label": "a"}}\n' for i in range(40)))
    stat = os.stat(data)
    assert len(read_rows(str(data), "train", "--data")) == 40
    data.write_text("".join(f'{{"text": "row {i}", "label": "a"}}\n' for i in range(80)))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert len(read_rows(str(data), "train", "--data")) == 80
