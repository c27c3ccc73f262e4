# The engine around the stages: sampling, scheduler, the generate CLI,
# devices, pipeline stages.
memllm_test(test_sampling SOURCES test_sampling.c LIBS mm_coordinator)
memllm_test(test_generate_cli SOURCES test_generate_cli.c LIBS mm_coordinator)
add_dependencies(test_generate_cli memllm)
# Pipeline stages in one process and on MPI ranks (mpirun --oversubscribe).
memllm_test(test_pipeline_cli SOURCES test_pipeline_cli.c LIBS mm_common PkgConfig::JANSSON
  ARGS ${MPIEXEC_EXECUTABLE})
add_dependencies(test_pipeline_cli memllm)
# Batches in flight (engine_submit/engine_collect) against whole steps, bit
# for bit: stages in one process, and also on 2 stage ranks (mpirun -np 3).
memllm_test(test_pipeline_flow SOURCES test_pipeline_flow.c LIBS mm_coordinator)
add_test(NAME test_pipeline_flow_mpi COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe
  --allow-run-as-root -np 3 $<TARGET_FILE:test_pipeline_flow>)
get_test_property(test_pipeline_flow ENVIRONMENT MEMLLM_FLOW_ENV)
set_tests_properties(test_pipeline_flow_mpi PROPERTIES ENVIRONMENT "${MEMLLM_FLOW_ENV}")
if(MEMLLM_SANITIZE)
  # Open MPI's start-up allocations (see tests/CMakeLists.txt).
  set_property(TEST test_pipeline_flow_mpi APPEND PROPERTY ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
endif()
memllm_test(test_memllm_read SOURCES test_memllm_read.c LIBS mm_coordinator)
add_test(NAME test_pipeline_kill_stage COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/kill_stage.sh
  ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:memllm> ${MEMLLM_FIXTURES}/models/tiny-mistral)
# --device cuda against --device cpu through the binary (SKIP without a GPU,
# after checking the GPU run fails clearly).
memllm_test(test_device_cli SOURCES test_device_cli.c LIBS mm_common)
add_dependencies(test_device_cli memllm)
set_tests_properties(test_device_cli PROPERTIES SKIP_REGULAR_EXPRESSION "SKIP: no CUDA device")
# Batch-invariant numerics (issue #10): each token's logits bit for bit those
# of the token decoded alone, whatever shares its step, the micro-batches,
# the stages or a rollback; on the engine, and through the binary with
# stages on MPI ranks (test_batch_invariance_cli).
memllm_test(test_batch_invariance SOURCES test_batch_invariance.c LIBS mm_coordinator)
add_test(NAME test_batch_invariance_cli
  COMMAND test_batch_invariance cli ${MPIEXEC_EXECUTABLE})
get_test_property(test_batch_invariance ENVIRONMENT MEMLLM_INVARIANCE_ENV)
set_tests_properties(test_batch_invariance_cli PROPERTIES ENVIRONMENT "${MEMLLM_INVARIANCE_ENV}")
add_dependencies(test_batch_invariance memllm)
if(MEMLLM_SANITIZE)
  # Open MPI's start-up allocations (see tests/CMakeLists.txt).
  set_property(TEST test_batch_invariance_cli APPEND PROPERTY ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
endif()
# Tests that run a model forward: tests/run-all.sh runs them again under each
# OpenBLAS core type this CPU can run (ctest -L model).
set_tests_properties(test_generate_cli test_pipeline_cli test_memllm_read test_pipeline_kill_stage
  test_batch_invariance test_batch_invariance_cli test_pipeline_flow test_pipeline_flow_mpi
  PROPERTIES LABELS model)
