"""What spectral intensity measures on text (docs/method.md, "What spectral intensity measures on text").

For the packaged MiniLM-L6 and MPNet-12 encoders over a seeded sample of CLINC150 training texts, per layer
(``hidden_states`` index): the spectral intensity ``I`` (the library's), the mean per-token L2 norm divided by
``D``, their Pearson correlation across layers, the intensity after standardising every token vector (zero mean,
unit variance over the hidden axis: what is left once the norm is taken out) and the norm-free spectral entropy.

Run::

    python benchmarks/intensity_norm.py --samples 256 [--models minilm mpnet]

Writes ``benchmarks/results/intensity_norm.json``. Inference only (a minute or two on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import RESULTS_DIR, load_clinc, machine_info, write_json  # noqa: E402
from hf_spectralkd.sampling import sample_indices  # noqa: E402
from hf_spectralkd.spectral import SpectralProfile, layer_spectrum_sums  # noqa: E402


def model_path(name: str) -> str:
    if name == "mpnet":
        from hf_spectralkd.packaged_mpnet import packaged_mpnet_path

        return packaged_mpnet_path()
    from hf_spectralkd.loading import packaged_minilm_path

    return packaged_minilm_path()


def standardise(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-6)


@torch.no_grad()
def measure(name: str, texts: list, batch_size: int = 32) -> dict:
    from transformers import AutoModel, AutoTokenizer

    path = model_path(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    profile = SpectralProfile()
    norm_sums, std_sums, tokens = None, None, 0.0
    start = time.time()
    for i in range(0, len(texts), batch_size):
        batch = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=64, return_tensors="pt")
        hidden = model(**batch, output_hidden_states=True).hidden_states
        mask = batch["attention_mask"]
        profile.update(hidden, mask)
        m = mask.float()
        norms = [float((h.float().norm(dim=-1) * m).sum()) / h.shape[-1] for h in hidden]
        standardised = [float(layer_spectrum_sums(standardise(h), mask)[0].sum()) / h.shape[-1] for h in hidden]
        norm_sums = norms if norm_sums is None else [a + b for a, b in zip(norm_sums, norms, strict=True)]
        std_sums = standardised if std_sums is None else [a + b for a, b in zip(std_sums, standardised, strict=True)]
        tokens += float(m.sum())
    intensity = [float(v) for v in profile.intensity]
    norm_over_d = [v / tokens for v in norm_sums]
    std_intensity = [v / tokens for v in std_sums]
    r = float(np.corrcoef(intensity, norm_over_d)[0, 1])
    return {"model": name, "path": path, "num_layers": len(intensity) - 1, "hidden_size": model.config.hidden_size,
            "samples": len(texts), "tokens": tokens, "intensity": intensity, "norm_over_d": norm_over_d,
            "pearson_intensity_norm": r, "standardised_intensity": std_intensity,
            "entropy": [float(v) for v in profile.entropy], "seconds": round(time.time() - start, 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="+", default=["minilm", "mpnet"], choices=["minilm", "mpnet"])
    parser.add_argument("--output", default=os.path.join(RESULTS_DIR, "intensity_norm.json"))
    args = parser.parse_args(argv)
    rows = load_clinc("train")
    texts = [rows[i]["text"] for i in sample_indices(len(rows), args.samples, args.seed)]
    results = []
    for name in args.models:
        out = measure(name, texts)
        results.append(out)
        print(f"{name}: r(intensity, mean ||x||/D) = {out['pearson_intensity_norm']:.4f}")
        for layer, (i, n, s, h) in enumerate(zip(out["intensity"], out["norm_over_d"], out["standardised_intensity"],
                                                 out["entropy"], strict=True)):
            print(f"  layer {layer:2d}: intensity {i:.5f}  ||x||/D {n:.5f}  standardised {s:.5f}  entropy {h:.4f}")
    write_json(args.output, {"command": "python benchmarks/intensity_norm.py " + " ".join(argv or sys.argv[1:]),
                             "samples": args.samples, "seed": args.seed, "models": results,
                             "machine": machine_info()})
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
