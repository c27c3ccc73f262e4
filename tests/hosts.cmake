# memllm across hosts: three network namespaces on this machine, Open MPI
# over TCP between them, launched by deploy/run-hosts.sh; annotate, generate
# with memory reads and edit must give what one process gives (issue 15).
# Skipped (exit 77) where namespaces cannot be made: not root, no iproute2.
# test_hosts_lost: a host partitioned or dead mid-job, or a stage or shard
# rank stopped (SIGSTOP) on its host, stops the job within MEMLLM_FAIL_SECONDS
# (30 s, or lower as the test sets it), naming it, with nothing left running
# on any host; annotate that lost its shards' host (dead or partitioned)
# keeps what was acknowledged, and resumed reaches the uninterrupted memory.
# Label "hosts", not "model": what they prove (the TCP path, lost hosts) does
# not change with OpenBLAS's core type, so run-all.sh runs them once.
# test_hosts_slurm: a one-node Slurm of its own (munged, slurmctld, slurmd
# in a temporary directory) runs deploy/slurm.sbatch with sbatch --wait:
# the results of one process; skipped where Slurm cannot start.
if(TARGET memllm AND NOT MEMLLM_SANITIZE)
  add_test(NAME test_hosts_across COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hosts/across_hosts.sh)
  add_test(NAME test_hosts_lost COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hosts/lost_host.sh)
  add_test(NAME test_hosts_slurm COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/hosts/slurm.sh)
  set_tests_properties(test_hosts_across test_hosts_lost test_hosts_slurm PROPERTIES
    ENVIRONMENT "OMP_WAIT_POLICY=passive;MEMLLM_DATA=${MEMLLM_DATA};MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR};MEMLLM_BIN=$<TARGET_FILE:memllm>"
    SKIP_RETURN_CODE 77
    LABELS hosts)
endif()
