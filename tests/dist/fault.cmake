# ctest driver for tests/dist/test_dist_faults.cpp: runs the hidden [.fault] case under mpirun with
# TILLER_TEST_FAULT=${FAULT} and checks that the job ends, in bounded time, with a non-zero status
# and an output that names what happened (EXPECT, a regular expression).
# -DMPIRUN=... -DBINARY=... -DFAULT=die|hang -DEXPECT=regex -DLIMIT=seconds
string(TIMESTAMP start "%s")
execute_process(
  COMMAND ${MPIRUN} --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1
          -x ASAN_OPTIONS=detect_leaks=0 -x TILLER_TEST_FAULT=${FAULT} -x TILLER_DIST_TIMEOUT=5 ${BINARY} [.fault]
          --use-colour no
  RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output TIMEOUT ${LIMIT})
string(TIMESTAMP end "%s")
math(EXPR seconds "${end} - ${start}")
message("${output}")
message("fault '${FAULT}': exit status ${status} after ${seconds} s")
if(status STREQUAL "0" OR status MATCHES "timeout")
  message(FATAL_ERROR "fault '${FAULT}': the job did not stop with an error within ${LIMIT} s")
endif()
if(NOT output MATCHES "${EXPECT}")
  message(FATAL_ERROR "fault '${FAULT}': the output does not say what happened (${EXPECT})")
endif()
