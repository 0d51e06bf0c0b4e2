.PHONY: test test-all lint format bench

test:
	pytest

test-all:
	pytest -m "slow or not slow"

lint:
	ruff check . && ruff format --check .

format:
	ruff format . && ruff check --fix .

bench:
	python bench/bench_vae.py
	python bench/bench_ddpm.py
	python bench/bench_lstm.py
