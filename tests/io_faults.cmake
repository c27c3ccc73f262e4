# A full disk and a failing file system under the memory (issue 15): the
# memory on a small tmpfs filled by import-docred and by edit (one process,
# and 2 shard ranks under mpirun) and by annotate (likewise), and on an ext4 image the
# kernel turns read-only mid-import. Each must stop with an error naming
# the shard, its directory and the cause, lose nothing acknowledged, and
# complete when run again with room. Root only (mount): skipped (exit 77) elsewhere.
# annotate runs the model: too slow under the sanitizers, whose builds run
# the same annotate code in test_annotate_cli and this memory code in the
# other cases.
if(TARGET memllm)
  set(IO_FAULT_CASES import mpi edit edit-mpi erofs)
  if(NOT MEMLLM_SANITIZE)
    list(APPEND IO_FAULT_CASES annotate annotate-mpi)
  endif()
  memllm_script_tests(test_io_faults SCRIPT io_faults/io_faults.sh CASES ${IO_FAULT_CASES}
    ENV MEMLLM_DATA MEMLLM_MODELS_DIR SKIP_RETURN_CODE 77 TIMEOUT 180)
endif()

# A corrupt SST file: verify and dump name it, nothing crashes, restore
# from a backup repairs it; one process and 2 shard ranks (the latter
# not under the sanitizers, whose builds run the same shard code in the
# former, there on the first and last SST file only). Needs no root.
if(TARGET memllm)
  set(CORRUPT_SST_CASES one)
  if(NOT MEMLLM_SANITIZE)
    list(APPEND CORRUPT_SST_CASES mpi)
  endif()
  memllm_script_tests(test_corrupt_sst SCRIPT io_faults/corrupt_sst.sh CASES ${CORRUPT_SST_CASES}
    ENV MEMLLM_DATA TIMEOUT 180)
endif()

# The client API behind it (mm_memory_fault: what memllm serve maps to 507
# or 503 for writes while it keeps serving reads), on a tmpfs it mounts.
if(NOT MEMLLM_CORE_ONLY)
  memllm_test(test_memory_io_fault SOURCES test_memory_io_fault.c LIBS mm_coordinator mm_memshard)
  set_tests_properties(test_memory_io_fault PROPERTIES SKIP_RETURN_CODE 77)
endif()
