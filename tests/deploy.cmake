# The README's first command's job, deploy/demo.sh, end to end, and the
# systemd unit deploy/install-service.sh writes for memllm serve. Not under
# the sanitizers: their builds run the same annotate, generate and serve code
# in test_annotate_cli, test_adapter_mr and the test_serve_* tests.
if(TARGET memllm AND NOT MEMLLM_SANITIZE)
  add_test(NAME test_deploy_demo COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/deploy_demo.sh)
  set_tests_properties(test_deploy_demo PROPERTIES ENVIRONMENT
    "OMP_WAIT_POLICY=passive;MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR};MEMLLM_BIN=$<TARGET_FILE:memllm>")
  add_test(NAME test_deploy_service COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/deploy_service.py)
  set_tests_properties(test_deploy_service PROPERTIES ENVIRONMENT
    "MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR};MEMLLM_BIN=$<TARGET_FILE:memllm>")
endif()
