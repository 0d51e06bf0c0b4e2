"""Run by test_trainer.py under torchrun (two CPU processes, gloo): genkit's checkpoint functions on FSDP2-sharded
modules. accelerate refuses FSDP without an accelerator, so this drives torch's ``fully_shard`` directly.

A tied-embedding LSTM is sharded, trained two steps, and its full model and optimizer state are gathered and
written as genkit writes a checkpoint; a differently initialised sharded copy loads them; one more identical step
must leave both with equal weights, and the written weights must be the full (unsharded) tensors."""

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from genkit_lstm import LSTMConfig, LSTMForCausalLM
from torch import nn
from torch.distributed.fsdp import fully_shard

from genkit.training import checkpoint as ckpt


def sharded_model(seed: int) -> tuple[nn.ModuleDict, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    config = LSTMConfig(
        vocab_size=37,
        embedding_size=16,
        hidden_size=16,
        num_hidden_layers=2,
        dropout=0.0,
        tie_word_embeddings=True,
    )
    model = LSTMForCausalLM(config)
    fully_shard(model)
    holder = nn.ModuleDict({"model": model})  # as the trainer keys an optimizer's modules
    return holder, torch.optim.AdamW(holder.parameters(), lr=1e-2)


def step(holder: nn.ModuleDict, optimizer: torch.optim.Optimizer, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed * 10 + dist.get_rank())
    ids = torch.randint(0, 37, (4, 12), generator=generator)
    holder["model"](input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def main(folder: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    trained, opt = sharded_model(seed=0)
    local_shape = tuple(trained["model"].lm_head.weight.to_local().shape)
    for i in range(2):
        step(trained, opt, i)
    model_state = ckpt.gather_model_state(trained["model"])
    optimizer_state = ckpt.gather_optimizer_state(trained, opt)
    if rank == 0:
        ckpt.save_state_file(folder / "model-model.safetensors", model_state)
        ckpt.save_tensors_and_json(folder / "optimizer-model", optimizer_state)
    dist.barrier()

    restored, opt2 = sharded_model(seed=1)
    ckpt.load_model_state(restored["model"], ckpt.load_state_file(folder / "model-model.safetensors"))
    ckpt.load_optimizer_state(restored, opt2, ckpt.load_tensors_and_json(folder / "optimizer-model"))
    step(trained, opt, 2)
    step(restored, opt2, 2)
    a, b = ckpt.gather_model_state(trained["model"]), ckpt.gather_model_state(restored["model"])
    if rank == 0:
        equal = sorted(k for k in a if torch.equal(a[k], b[k]))
        report = {"keys": sorted(a), "equal": equal, "local_head_shape": local_shape}
        report["tied_after_load"] = bool(torch.equal(b["lm_head.weight"], b["embeddings.weight"]))
        (folder / "report.json").write_text(json.dumps(report))
    dist.barrier()
    (folder / f"rank{rank}.done").write_text("")
    # Leave without tearing gloo down: under load its teardown (destroy_process_group, or the interpreter's exit)
    # now and then aborts with "terminate called without an active exception" after all the work above is done.
    os._exit(0)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
