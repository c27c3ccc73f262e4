# memllm train: gradients against PyTorch + PEFT, and the command's
# promises (overfit, resume after kill, ranks agree, bad input).
memllm_test(test_train_cli SOURCES test_train_cli.c LIBS mm_common
  ARGS $<TARGET_FILE:memllm> ${MEMLLM_FIXTURES} ${MPIEXEC_EXECUTABLE})
add_dependencies(test_train_cli memllm)
memllm_test(test_train_reference SOURCES test_train_reference.c LIBS mm_trainer mm_worker
  ARGS $<TARGET_FILE:memllm> ${MEMLLM_FIXTURES})
add_dependencies(test_train_reference memllm)
memllm_test(test_train_examples SOURCES test_train_examples.c LIBS mm_trainer
  ARGS $<TARGET_FILE:memllm> ${MEMLLM_DATA} ${MEMLLM_MODELS_DIR})
add_dependencies(test_train_examples memllm)
# The CUDA trainer against PEFT and the CPU trainer (SKIP without a GPU).
if(MEMLLM_HAVE_CUDA)
  memllm_test(test_train_cuda SOURCES test_train_cuda.c LIBS mm_train_cuda mm_trainer mm_worker
    ARGS ${MEMLLM_FIXTURES})
  set_tests_properties(test_train_cuda PROPERTIES SKIP_REGULAR_EXPRESSION "SKIP: no CUDA device")
endif()
