# Memory shards and the memory client (issue 3).
set(MEMORY_TEST_LIBS mm_coordinator mm_memshard)

memllm_test(test_memory_query SOURCES test_memory_query.c LIBS ${MEMORY_TEST_LIBS})
