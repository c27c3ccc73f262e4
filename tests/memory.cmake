# Memory shards and the memory client (issue 3).
set(MEMORY_TEST_LIBS mm_coordinator mm_memshard)

memllm_test(test_memory_query SOURCES test_memory_query.c LIBS ${MEMORY_TEST_LIBS})
memllm_test(test_memory_store SOURCES test_memory_store.c LIBS ${MEMORY_TEST_LIBS})
memllm_test(test_memory_shards SOURCES test_memory_shards.c LIBS ${MEMORY_TEST_LIBS})
memllm_test(test_memory_backup SOURCES test_memory_backup.c LIBS ${MEMORY_TEST_LIBS})
memllm_test(test_memory_crash SOURCES test_memory_crash.c LIBS ${MEMORY_TEST_LIBS})
memllm_test(test_memory_verify SOURCES test_memory_verify.c LIBS ${MEMORY_TEST_LIBS})
memllm_test(test_memory_writes SOURCES test_memory_writes.c LIBS ${MEMORY_TEST_LIBS})
memllm_test(test_memory_upgrade SOURCES test_memory_upgrade.c LIBS ${MEMORY_TEST_LIBS})
# An entity's copies, one shard's counts, per-shard request counts (memllm serve).
memllm_test(test_memory_entity SOURCES test_memory_entity.c LIBS ${MEMORY_TEST_LIBS})

# Multi-rank: 1 coordinator + 3 shard ranks (more ranks than the 2 cores of
# CI, hence --oversubscribe; CI runs as root).
set(MEMORY_MPIRUN ${MPIEXEC_EXECUTABLE} --oversubscribe --allow-run-as-root)
add_executable(test_memory_mpi test_memory_mpi.c)
target_include_directories(test_memory_mpi PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_memory_mpi PRIVATE ${MEMORY_TEST_LIBS})
add_test(NAME test_memory_mpi COMMAND ${MEMORY_MPIRUN} -np 4 $<TARGET_FILE:test_memory_mpi>)

# The memllm memory commands end to end, in one process and under mpirun.
add_test(NAME test_memory_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/memory/cli_memory.sh)

set_tests_properties(test_memory_cli PROPERTIES ENVIRONMENT
  "MEMLLM_DATA=${MEMLLM_DATA};MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR};MEMLLM_BIN=$<TARGET_FILE:memllm>")

# Open MPI's own start-up allocations (in plugins it unloads) show up as
# leaks without a usable stack under LeakSanitizer; the same client and shard
# code is leak-checked by the single-process tests.
if(MEMLLM_SANITIZE)
  set_tests_properties(test_memory_mpi PROPERTIES ENVIRONMENT "ASAN_OPTIONS=detect_leaks=0")
endif()

# A shard rank killed with SIGKILL mid-stream, the job restarted on the same
# directories.
add_executable(test_memory_mpi_crash test_memory_mpi_crash.c)
target_include_directories(test_memory_mpi_crash PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(test_memory_mpi_crash PRIVATE ${MEMORY_TEST_LIBS})
add_test(NAME test_memory_mpi_crash
  COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/memory/mpi_crash.sh $<TARGET_FILE:test_memory_mpi_crash>)

# The approximate entity index: recall, threshold searches, its graph file,
# and identical answers on Re-DocRED dev with and without it.
# Under the sanitizers the recall test's graph holds 5k rows, not 20k (the
# same code; its build there took most of 150 s of CPU).
memllm_test(test_memory_ann SOURCES test_memory_ann.c LIBS ${MEMORY_TEST_LIBS})
