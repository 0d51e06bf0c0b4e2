.PHONY: test test-all lint format bench bench-gpu gpu-check

test:
	pytest

test-all:
	pytest -m "slow or not slow"

lint:
	ruff check . && ruff format --check . && lint-imports

format:
	ruff format . && ruff check --fix .

# Every benchmark in docs/benchmarks.md; about an hour on a 2-core CPU. Run it on an otherwise idle machine.
bench:
	python bench/bench_vae.py --repeats 5
	python bench/dcgan_small.py
	genkit train ddpm --output outputs/bench-ddpm --overwrite
	python bench/bench_ddpm.py sampling outputs/bench-ddpm --candidates
	python bench/bench_ddpm.py throughput --repeats 3
	python bench/bench_lstm.py quality
	python bench/bench_lstm.py speed
	python bench/bench_vae_peer.py
	python bench/bench_data.py
	python bench/bench_gpu.py --smoke

# On a machine with an NVIDIA GPU (about 8 minutes on one H100/H200): docs/benchmarks.md, "GPU".
bench-gpu:
	python bench/bench_gpu.py --json bench-gpu.json

# Does genkit train, resume, sample and evaluate correctly in fp16 and bf16 on this GPU? (2.6 minutes on an H200)
gpu-check:
	cd bench && python gpu_check.py --json ../gpu-check.json
