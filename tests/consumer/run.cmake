# ctest driver: install tiller into a scratch prefix, build tests/consumer against it, run it.
# Invoked as: cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DGENERATOR=... -P run.cmake
set(prefix ${BUILD_DIR}/consumer/prefix)
set(consumer_build ${BUILD_DIR}/consumer/build)
file(REMOVE_RECURSE ${BUILD_DIR}/consumer)
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix}
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "consumer: cmake --install failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/consumer -B ${consumer_build}
                        -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "consumer: configure against the installed package failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${consumer_build} RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "consumer: build failed (${rc})")
endif()
execute_process(COMMAND ${consumer_build}/consumer RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "consumer: the program failed (${rc})")
endif()
