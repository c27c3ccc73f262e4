# The command line's promises (tests/test_cli_help.c): --help of every
# command and subcommand, unknown options, --memshards 0 (no memory) in one
# process and under mpirun. Under the sanitizers, each documented option is
# tried on one command only: 430 starts of memllm took 286 s.
memllm_test(test_cli_help SOURCES test_cli_help.c LIBS mm_common
  ARGS ${MPIEXEC_EXECUTABLE})
add_dependencies(test_cli_help memllm)
