# memllm eval: each measure's scoring against hand-worked figures, and the
# command end to end with SmolLM2 and the committed adapters.
# Under the sanitizers (SANITIZED in tests/check.h, where each generated
# token costs ten times as much): test_eval_extract's adapter writes at most
# 48 tokens a sentence; test_eval_ppl's mpirun run reads the gold memory,
# not the model's own reads (the slowest condition, still run in one
# process); test_eval_edit makes fewer edits and probes (the same rounds
# and code).
memllm_test(test_eval_extract SOURCES test_eval_extract.c LIBS mm_eval mm_memory_client
  ARGS $<TARGET_FILE:memllm> ${MEMLLM_DATA} ${MEMLLM_MODELS_DIR} ${CMAKE_SOURCE_DIR}/adapters)
add_dependencies(test_eval_extract memllm)

# The committed MR adapter reads through the runtime on a held-out document.
memllm_test(test_adapter_mr SOURCES test_adapter_mr.c LIBS PkgConfig::JANSSON
  ARGS $<TARGET_FILE:memllm> ${MEMLLM_DATA} ${MEMLLM_MODELS_DIR} ${CMAKE_SOURCE_DIR}/adapters)
add_dependencies(test_adapter_mr memllm)
memllm_test(test_eval_ppl SOURCES test_eval_ppl.c LIBS mm_eval mm_cli
  ARGS $<TARGET_FILE:memllm> ${MEMLLM_DATA} ${MEMLLM_MODELS_DIR} ${CMAKE_SOURCE_DIR}/adapters
       "${MPIEXEC_EXECUTABLE}")
add_dependencies(test_eval_ppl memllm)
memllm_test(test_eval_edit SOURCES test_eval_edit.c LIBS mm_eval mm_memory_client
  ARGS $<TARGET_FILE:memllm> ${MEMLLM_DATA} ${MEMLLM_MODELS_DIR} ${CMAKE_SOURCE_DIR}/adapters
       "${MPIEXEC_EXECUTABLE}")
add_dependencies(test_eval_edit memllm)
