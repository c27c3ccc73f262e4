# The engine: forward pass, LoRA, KV cache, sampling, scheduler, CLI.
memllm_test(test_model_reference SOURCES test_model_reference.c LIBS mm_worker
  ARGS tiny-mistral tiny-mistral-sharded tiny-llama tiny-llama-bf16 tiny-llama-f16)
