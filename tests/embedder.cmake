# The BERT sentence embedder of the memory (issue 3): all-MiniLM-L6-v2 on
# memllm's kernels against sentence-transformers, its loader's errors, and a
# memory that finds a paraphrase only with it.
memllm_test(test_embedder_bert SOURCES test_embedder_bert.c LIBS mm_coordinator)
memllm_test(test_embedder_errors SOURCES test_embedder_errors.c LIBS mm_coordinator)
memllm_test(test_embedder_memory SOURCES test_embedder_memory.c LIBS mm_coordinator mm_memshard)
# BERT forward on memllm's kernels: also under each OpenBLAS core type
# (tests/run-all.sh, ctest -L model).
set_tests_properties(test_embedder_bert test_embedder_memory PROPERTIES LABELS model)
