# memllm_script_tests(NAME SCRIPT CASES case... [ARGS arg...] [ENV VAR...]
#                     [TIMEOUT S] [SKIP_RETURN_CODE N])
# One test per case, NAME_<case>, each running `bash SCRIPT <case> ARGS...`
# (SCRIPT in the calling area's folder) against this build's memllm: the
# fault scripts of tests/faults and tests/io_faults, which differ only in
# these.
# Each gets OMP_WAIT_POLICY=passive (side by side under ctest -j, OpenMP
# threads that spin would steal their siblings' cores), VAR=${VAR} for each
# ENV name (MEMLLM_DATA, MEMLLM_MODELS_DIR, MEMLLM_FIXTURES: what the script
# reads), MEMLLM_BIN, and MEMLLM_TEST_SIZE=small under the sanitizers
# (tests/CMakeLists.txt's MEMLLM_TEST_SIZE_ENV). SKIP_RETURN_CODE: the exit
# status of a script that cannot run here (e.g. 77, not root) and says why.
function(memllm_script_tests name)
  cmake_parse_arguments(T "" "SCRIPT;TIMEOUT;SKIP_RETURN_CODE" "CASES;ARGS;ENV" ${ARGN})
  if(NOT T_SCRIPT OR NOT T_CASES)
    message(FATAL_ERROR "memllm_script_tests(${name}): SCRIPT and CASES are required")
  endif()
  set(env "OMP_WAIT_POLICY=passive")
  foreach(var IN LISTS T_ENV)
    string(APPEND env ";${var}=${${var}}")
  endforeach()
  string(APPEND env ";MEMLLM_BIN=$<TARGET_FILE:memllm>${MEMLLM_TEST_SIZE_ENV}")
  foreach(case IN LISTS T_CASES)
    add_test(NAME ${name}_${case}
      COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/${T_SCRIPT} ${case} ${T_ARGS})
    set_tests_properties(${name}_${case} PROPERTIES ENVIRONMENT "${env}")
    if(T_TIMEOUT)
      set_tests_properties(${name}_${case} PROPERTIES TIMEOUT ${T_TIMEOUT})
    endif()
    if(DEFINED T_SKIP_RETURN_CODE)
      set_tests_properties(${name}_${case} PROPERTIES SKIP_RETURN_CODE ${T_SKIP_RETURN_CODE})
    endif()
  endforeach()
endfunction()
