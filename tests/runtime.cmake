# The MemLLM runtime: late stopping, sentence splitting, the write loop,
# corpus annotation and knowledge editing (issue 4).
memllm_test(test_late_stop SOURCES test_late_stop.c LIBS mm_coordinator)
memllm_test(test_sentences SOURCES test_sentences.c LIBS mm_coordinator)
memllm_test(test_memllm_write SOURCES test_memllm_write.c LIBS mm_coordinator)
# Prefix sharing's cache of finished contexts: lookup, budget, LRU eviction.
memllm_test(test_prefix_cache SOURCES test_prefix_cache.c LIBS mm_coordinator)
# The scheduler's groups of slots stepping on their own (the flowing
# pipeline's schedule): the same outputs as whole steps, bit for bit.
memllm_test(test_scheduler_groups SOURCES test_scheduler_groups.c LIBS mm_coordinator)
# Knowledge editing through the binary, in one process and under mpirun.
memllm_test(test_edit_cli SOURCES test_edit_cli.c LIBS mm_common ARGS ${MPIEXEC_EXECUTABLE})
add_dependencies(test_edit_cli memllm)
# Corpus annotation through the binary: refusals, one process vs mpirun,
# and jobs killed part way (SIGKILL, a stage rank, a shard rank) resumed.
# Under the sanitizers, one Re-DocRED document in the layouts' corpus, not
# two (the same layouts and checks; 365 s there in all).
memllm_test(test_annotate_cli SOURCES test_annotate_cli.c LIBS mm_coordinator
  ARGS ${MPIEXEC_EXECUTABLE})
add_dependencies(test_annotate_cli memllm)
# Run a model forward: also under each OpenBLAS core type (tests/run-all.sh).
set_tests_properties(test_memllm_write test_prefix_cache test_scheduler_groups test_annotate_cli
  PROPERTIES LABELS model)
