# A rank that stops answering while its host stays up (SIGSTOP'd): the
# coordinator's heartbeat watch stops the job within MEMLLM_FAIL_SECONDS,
# naming the rank's role and host, and no rank is left running; a stage
# rank in generate, a shard rank in memory import-docred (mpirun
# --oversubscribe). Skipped (exit 77) where MPI runs no second thread.
if(TARGET memllm)
  foreach(case stage shard)
    add_test(NAME test_hung_rank_${case}
      COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/faults/hung_rank.sh ${case})
    set_tests_properties(test_hung_rank_${case} PROPERTIES
      ENVIRONMENT "OMP_WAIT_POLICY=passive;MEMLLM_DATA=${MEMLLM_DATA};MEMLLM_FIXTURES=${MEMLLM_FIXTURES};MEMLLM_BIN=$<TARGET_FILE:memllm>"
      SKIP_RETURN_CODE 77
      TIMEOUT 120)
  endforeach()
endif()
