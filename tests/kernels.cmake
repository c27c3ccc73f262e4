# Kernel tests: every op against PyTorch / gguf reference dumps
# (tools/make_op_fixtures.py -> tests/fixtures/ops), and the SIMD paths
# against the portable ones.
foreach(t dtype matmul ops attention)
  memllm_test(test_kernels_${t}
    SOURCES test_kernels_${t}.c test_kernels_fixture.c
    LIBS mm_kernels PkgConfig::JANSSON m)
endforeach()
# The matmul dispatch depends on OpenBLAS's core: also under each core type
# (tests/run-all.sh, ctest -L model).
foreach(t dtype matmul ops attention)
  set_tests_properties(test_kernels_${t} PROPERTIES LABELS model)
endforeach()
