# CUDA kernels against the CPU ones on random inputs. Built wherever nvcc is
# (CI links them); without a GPU each prints "SKIP: no CUDA device", exits
# 0, and ctest counts it as skipped.
if(MEMLLM_HAVE_CUDA)
  foreach(t matmul ops attention)
    memllm_test(test_kernels_cuda_${t} SOURCES test_kernels_cuda_${t}.c
      LIBS mm_kernels_cuda mm_kernels m)
    set_tests_properties(test_kernels_cuda_${t} PROPERTIES
      SKIP_REGULAR_EXPRESSION "SKIP: no CUDA device")
  endforeach()
endif()
