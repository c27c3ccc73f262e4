# CUDA kernels against the CPU ones on random inputs. Built wherever nvcc is
# (CI links them); without a GPU each prints "SKIP: no CUDA device", exits
# 0, and ctest counts it as skipped.
if(MEMLLM_HAVE_CUDA)
  foreach(t matmul ops attention train)
    memllm_test(test_kernels_cuda_${t} SOURCES test_kernels_cuda_${t}.c
      LIBS mm_kernels_cuda mm_kernels m)
    set_tests_properties(test_kernels_cuda_${t} PROPERTIES
      SKIP_REGULAR_EXPRESSION "SKIP: no CUDA device")
  endforeach()
  # The GPU stage end to end on the engine's model fixtures (and SmolLM2 when
  # fetched).
  memllm_test(test_kernels_cuda_stage SOURCES test_kernels_cuda_stage.c
    LIBS mm_worker_cuda PkgConfig::JANSSON m
    ARGS tiny-mistral tiny-mistral-sharded tiny-llama tiny-llama-bf16 tiny-llama-f16
         tiny-llama-gguf-f32)
  set_tests_properties(test_kernels_cuda_stage PROPERTIES
    SKIP_REGULAR_EXPRESSION "SKIP: no CUDA device")
  # An adapter on the LM head and token rows: refused unless merged.
  memllm_test(test_lora_head_cuda SOURCES test_lora_head_cuda.c
    LIBS mm_worker_cuda PkgConfig::JANSSON m)
  set_tests_properties(test_lora_head_cuda PROPERTIES
    SKIP_REGULAR_EXPRESSION "SKIP: no CUDA device")
endif()
