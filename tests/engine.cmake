# The engine around the stages: sampling, scheduler, the generate CLI,
# devices, pipeline stages.
memllm_test(test_sampling SOURCES test_sampling.c LIBS mm_coordinator)
memllm_test(test_generate_cli SOURCES test_generate_cli.c LIBS mm_coordinator)
add_dependencies(test_generate_cli memllm)
# Pipeline stages in one process and on MPI ranks (mpirun --oversubscribe).
memllm_test(test_pipeline_cli SOURCES test_pipeline_cli.c LIBS mm_common
  ARGS ${MPIEXEC_EXECUTABLE})
add_dependencies(test_pipeline_cli memllm)
memllm_test(test_memllm_read SOURCES test_memllm_read.c LIBS mm_coordinator)
add_test(NAME test_pipeline_kill_stage COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/kill_stage.sh
  ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:memllm> ${MEMLLM_FIXTURES}/models/tiny-mistral)
# --device cuda against --device cpu through the binary (SKIP without a GPU,
# after checking the GPU run fails clearly).
memllm_test(test_device_cli SOURCES test_device_cli.c LIBS mm_common)
add_dependencies(test_device_cli memllm)
set_tests_properties(test_device_cli PROPERTIES SKIP_REGULAR_EXPRESSION "SKIP: no CUDA device")
