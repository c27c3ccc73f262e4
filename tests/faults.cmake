# A rank that stops answering while its host stays up (SIGSTOP'd): the
# coordinator's heartbeat watch stops the job within MEMLLM_FAIL_SECONDS,
# naming the rank's role and host, and no rank is left running; a stage
# rank in generate, a shard rank in memory import-docred (mpirun
# --oversubscribe). Skipped (exit 77) where MPI runs no second thread.
if(TARGET memllm)
  memllm_script_tests(test_hung_rank SCRIPT faults/hung_rank.sh CASES stage shard
    ENV MEMLLM_DATA MEMLLM_FIXTURES SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
