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
# test_serve_ui: the /ui page driven in headless Chromium (selenium).
# test_serve_mpi_memory: the memory API, annotate, keys, /health and
# per-shard metrics on 1 + 1 + 2 ranks equal to one process.
memllm_test(test_serve_request SOURCES test_serve_request.c LIBS mm_serve)
memllm_test(test_serve_chat_template SOURCES test_serve_chat_template.c LIBS mm_serve)
# serve_script_test(NAME SCRIPT [ARGS ...] [LABEL L] [TIMEOUT S]): a test
# script of tests/serve/ run by python3 against this build's memllm, the
# models, the data and the adapters (exit 77: skipped, saying why).
function(serve_script_test name script)
  cmake_parse_arguments(T "" "LABEL;TIMEOUT" "ARGS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_test(NAME ${name} COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/serve/${script} ${T_ARGS})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} SKIP_RETURN_CODE 77 ENVIRONMENT
    "OMP_WAIT_POLICY=passive;MEMLLM_MPIRUN=${MPIEXEC_EXECUTABLE};MEMLLM_BIN=$<TARGET_FILE:memllm>;MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR};MEMLLM_DATA=${MEMLLM_DATA};MEMLLM_ADAPTERS=${CMAKE_SOURCE_DIR}/adapters${MEMLLM_TEST_SIZE_ENV}")
  if(T_LABEL)
    set_tests_properties(${name} PROPERTIES LABELS ${T_LABEL})
  endif()
endfunction()

if(TARGET memllm)
  foreach(part api memory limits)
    serve_script_test(test_serve_${part} test_serve.py ARGS ${part} LABEL model)
  endforeach()
  # annotate: about 45 s, near 300 s under the sanitizers (three model
  # loads and the write loop twice), hence its cap.
  foreach(part memapi annotate readfail)
    serve_script_test(test_serve_${part} test_serve_memory_api.py ARGS ${part} LABEL model
                      TIMEOUT 600)
  endforeach()
  serve_script_test(test_serve_mpi test_serve_mpi.py LABEL mpi)
  # The memory API, annotate, key roles, /health's probes (a stopped rank:
  # 503) and per-shard metrics on 1 + 1 + 2 ranks against one process.
  serve_script_test(test_serve_mpi_memory test_serve_mpi_memory.py LABEL mpi TIMEOUT 600)
  serve_script_test(test_serve_full_disk test_serve_full_disk.py LABEL io)
  serve_script_test(test_serve_tls test_serve_tls.py)
  serve_script_test(test_serve_load test_serve_load.py LABEL load)
  # The page in headless Chromium (skipped without it); its screenshot in
  # the build tree. Label "ui", not "model": it checks the page against the
  # same server's API, which no OpenBLAS core type changes. Not under the
  # sanitizers: what it alone proves is the page's script in Chromium; the
  # server code it reaches (GET /ui, completions with memory reads, entity
  # lookup, edit batches and their undo) runs under them in test_serve_api,
  # test_serve_memory and test_serve_memapi (36 s there, mostly Chromium).
  if(NOT MEMLLM_SANITIZE)
    serve_script_test(test_serve_ui test_serve_ui.py
                      ARGS ${CMAKE_CURRENT_BINARY_DIR}/test_serve_ui.png LABEL ui)
  endif()
endif()
