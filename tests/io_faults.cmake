# A full disk and a failing file system under the memory (issue 15): the
# memory on a small tmpfs filled by import-docred and by edit (one process,
# and 2 shard ranks under mpirun) and by annotate, and on an ext4 image the
# kernel turns read-only mid-import. Each must stop with an error naming
# the shard, its directory and the cause, lose nothing acknowledged, and
# complete when run again with room. Root only (mount): skipped (exit 77) elsewhere.
if(TARGET memllm)
  foreach(case import mpi edit edit-mpi annotate erofs)
    add_test(NAME test_io_faults_${case}
      COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/io_faults/io_faults.sh ${case})
    set_tests_properties(test_io_faults_${case} PROPERTIES
      ENVIRONMENT "OMP_WAIT_POLICY=passive;MEMLLM_DATA=${MEMLLM_DATA};MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR};MEMLLM_BIN=$<TARGET_FILE:memllm>"
      SKIP_RETURN_CODE 77
      TIMEOUT 180)
  endforeach()
endif()
