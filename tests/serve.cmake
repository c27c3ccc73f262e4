# memllm serve (issue #13): the request parser's refusals, the chat
# templates against HF's apply_chat_template (committed fixtures), and the
# service through the binary with the real openai client
# (tests/serve/test_serve.py: api, memory, limits), and its memory API,
# key roles, metrics and a failing memory read with plain HTTP
# (tests/serve/test_serve_memory_api.py: memapi, annotate, readfail), and a
# bounded load (tests/serve/test_serve_load.py: 64 streaming clients, 256
# requests, 200 or 429 only, metrics equal to the clients' counts), and
# the service on 1 + 2 + 2 MPI ranks (tests/serve/test_serve_mpi.py: the
# one-process texts and read trace, SIGTERM drains every rank). Labels
# "load" and "mpi", not "model": OpenBLAS's core type changes nothing they
# check. test_serve_full_disk: the memory on a full 3 MB tmpfs (root;
# skipped otherwise): writes 507, reads answer, nothing acknowledged lost.
# test_serve_tls: HTTPS with a certificate made by openssl for the test.
memllm_test(test_serve_request SOURCES test_serve_request.c LIBS mm_serve)
memllm_test(test_serve_chat_template SOURCES test_serve_chat_template.c LIBS mm_serve)
if(TARGET memllm)
  foreach(part api memory limits)
    add_test(NAME test_serve_${part}
      COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/serve/test_serve.py ${part})
    set_tests_properties(test_serve_${part} PROPERTIES LABELS model TIMEOUT 300 ENVIRONMENT
      "OMP_WAIT_POLICY=passive;MEMLLM_BIN=$<TARGET_FILE:memllm>;MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR};MEMLLM_DATA=${MEMLLM_DATA};MEMLLM_ADAPTERS=${CMAKE_SOURCE_DIR}/adapters")
  endforeach()
  # annotate: about 45 s, near 300 s under the sanitizers (three model
  # loads and the write loop twice), hence its cap.
  foreach(part memapi annotate readfail)
    add_test(NAME test_serve_${part}
      COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/serve/test_serve_memory_api.py ${part})
    set_tests_properties(test_serve_${part} PROPERTIES LABELS model TIMEOUT 600 ENVIRONMENT
      "OMP_WAIT_POLICY=passive;MEMLLM_BIN=$<TARGET_FILE:memllm>;MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR};MEMLLM_DATA=${MEMLLM_DATA};MEMLLM_ADAPTERS=${CMAKE_SOURCE_DIR}/adapters")
  endforeach()
  add_test(NAME test_serve_mpi COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/serve/test_serve_mpi.py)
  set_tests_properties(test_serve_mpi PROPERTIES LABELS mpi TIMEOUT 300 SKIP_RETURN_CODE 77
    ENVIRONMENT "OMP_WAIT_POLICY=passive;MEMLLM_MPIRUN=${MPIEXEC_EXECUTABLE};MEMLLM_BIN=$<TARGET_FILE:memllm>;MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR};MEMLLM_DATA=${MEMLLM_DATA};MEMLLM_ADAPTERS=${CMAKE_SOURCE_DIR}/adapters")
  add_test(NAME test_serve_full_disk
    COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/serve/test_serve_full_disk.py)
  set_tests_properties(test_serve_full_disk PROPERTIES LABELS io TIMEOUT 300 SKIP_RETURN_CODE 77
    ENVIRONMENT "OMP_WAIT_POLICY=passive;MEMLLM_BIN=$<TARGET_FILE:memllm>;MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR};MEMLLM_DATA=${MEMLLM_DATA};MEMLLM_ADAPTERS=${CMAKE_SOURCE_DIR}/adapters")
  add_test(NAME test_serve_tls COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/serve/test_serve_tls.py)
  set_tests_properties(test_serve_tls PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77
    ENVIRONMENT "OMP_WAIT_POLICY=passive;MEMLLM_BIN=$<TARGET_FILE:memllm>;MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR};MEMLLM_DATA=${MEMLLM_DATA};MEMLLM_ADAPTERS=${CMAKE_SOURCE_DIR}/adapters")
  add_test(NAME test_serve_load COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/serve/test_serve_load.py)
  set_tests_properties(test_serve_load PROPERTIES LABELS load TIMEOUT 300 ENVIRONMENT
    "OMP_WAIT_POLICY=passive;MEMLLM_BIN=$<TARGET_FILE:memllm>;MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR};MEMLLM_DATA=${MEMLLM_DATA};MEMLLM_ADAPTERS=${CMAKE_SOURCE_DIR}/adapters")
endif()
