"""Benchmarks of hf_spectralkd (speed and quality); run as scripts, see benchmarks/README.md."""
