# A pipeline stage on the CPU: forward pass against HF's logits, LoRA, KV
# cache rollback and its pages, model errors, SmolLM2 against llama.cpp.
memllm_test(test_model_reference SOURCES test_model_reference.c LIBS mm_worker
  ARGS tiny-mistral tiny-mistral-sharded tiny-llama tiny-llama-bf16 tiny-llama-f16
       tiny-llama-gguf-f32)
memllm_test(test_kv_rollback SOURCES test_kv_rollback.c LIBS mm_worker)
memllm_test(test_kv_pages SOURCES test_kv_pages.c LIBS mm_worker)
memllm_test(test_model_errors SOURCES test_model_errors.c LIBS mm_worker)
memllm_test(test_smollm2_llamacpp SOURCES test_smollm2_llamacpp.c LIBS mm_worker)
# Run a model forward: also under each OpenBLAS core type (tests/run-all.sh).
set_tests_properties(test_model_reference test_kv_rollback test_smollm2_llamacpp
  PROPERTIES LABELS model)
# A PEFT adapter on the LM head and token rows (tools/make_adapter_head_fixtures.py).
memllm_test(test_lora_head SOURCES test_lora_head.c LIBS mm_worker)
set_tests_properties(test_lora_head PROPERTIES LABELS model)
