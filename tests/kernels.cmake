# Kernel tests: every op against PyTorch / gguf reference dumps
# (tools/make_op_fixtures.py -> tests/fixtures/ops), the SIMD paths against
# the portable ones, and batch invariance (a token's outputs the same bits
# whatever shares its call).
foreach(t dtype matmul gemm ops attention backward)
  memllm_test(test_kernels_${t}
    SOURCES test_kernels_${t}.c test_kernels_fixture.c
    LIBS mm_kernels PkgConfig::JANSSON m)
endforeach()
# the dropout masks against common/train_rng.h itself
target_include_directories(test_kernels_backward PRIVATE ${PROJECT_SOURCE_DIR}/common)
# The kernels must not depend on OpenBLAS's core (they use no BLAS): also
# under each core type (tests/run-all.sh, ctest -L model), which would catch
# a BLAS call coming back.
foreach(t dtype matmul gemm ops attention backward)
  set_tests_properties(test_kernels_${t} PROPERTIES LABELS model)
endforeach()
