# The README's first command's job, deploy/demo.sh, end to end. Not under
# the sanitizers: their builds run the same annotate and generate code in
# test_annotate_cli and test_adapter_mr.
if(TARGET memllm AND NOT MEMLLM_SANITIZE)
  add_test(NAME test_deploy_demo COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/deploy_demo.sh)
  set_tests_properties(test_deploy_demo PROPERTIES ENVIRONMENT
    "OMP_WAIT_POLICY=passive;MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR};MEMLLM_BIN=$<TARGET_FILE:memllm>")
endif()
