# Decides which communicators are built (core/dist/): MPI for CPU tensors and for launching
# processes, NCCL for CUDA tensors (bootstrapped over MPI, so NCCL needs MPI).
#   TILLER_MPI  = AUTO | ON | OFF   CMake's FindMPI (Debian: libopenmpi-dev openmpi-bin)
#   TILLER_NCCL = AUTO | ON | OFF   nccl.h + libnccl from the CUDA toolkit, $NCCL_HOME, or the
#                                   nvidia-nccl Python wheel's folder (python3 -c "import nvidia.nccl")
# Sets TILLER_HAS_MPI, TILLER_HAS_NCCL and, when found, the imported target tiller_nccl.
# tiller_distributed(target) adds the definitions, include folders and libraries to a target.
set(TILLER_MPI AUTO CACHE STRING "Build the MPI communicator: AUTO (when found), ON or OFF")
set_property(CACHE TILLER_MPI PROPERTY STRINGS AUTO ON OFF)
set(TILLER_NCCL AUTO CACHE STRING "Build the NCCL communicator: AUTO (when CUDA, MPI and NCCL are found), ON or OFF")
set_property(CACHE TILLER_NCCL PROPERTY STRINGS AUTO ON OFF)

set(TILLER_HAS_MPI OFF)
if(NOT TILLER_MPI STREQUAL "OFF")
  find_package(MPI COMPONENTS CXX QUIET)
  if(MPI_CXX_FOUND)
    set(TILLER_HAS_MPI ON)
    message(STATUS "tiller: MPI communicator ON (MPI ${MPI_CXX_VERSION}, launcher ${MPIEXEC_EXECUTABLE})")
  elseif(TILLER_MPI STREQUAL "ON")
    message(FATAL_ERROR "tiller: TILLER_MPI=ON but no MPI was found; install libopenmpi-dev "
                        "openmpi-bin or use -DTILLER_MPI=AUTO")
  else()
    message(STATUS "tiller: MPI communicator OFF (MPI not found; apt-get install libopenmpi-dev openmpi-bin)")
  endif()
else()
  message(STATUS "tiller: MPI communicator OFF (TILLER_MPI=OFF)")
endif()

set(TILLER_HAS_NCCL OFF)
if(NOT TILLER_NCCL STREQUAL "OFF" AND TILLER_HAS_CUDA AND TILLER_HAS_MPI)
  set(tiller_nccl_hints $ENV{NCCL_HOME})
  find_program(TILLER_NCCL_PYTHON NAMES python3 python)
  if(TILLER_NCCL_PYTHON)
    execute_process(COMMAND ${TILLER_NCCL_PYTHON} -c "import nvidia.nccl; print(list(nvidia.nccl.__path__)[0])"
                    OUTPUT_VARIABLE tiller_nccl_wheel OUTPUT_STRIP_TRAILING_WHITESPACE
                    ERROR_QUIET RESULT_VARIABLE tiller_nccl_wheel_status)
    if(tiller_nccl_wheel_status EQUAL 0 AND tiller_nccl_wheel)
      list(APPEND tiller_nccl_hints ${tiller_nccl_wheel})
    endif()
  endif()
  list(APPEND tiller_nccl_hints ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_TARGET_DIR})
  find_path(TILLER_NCCL_INCLUDE_DIR nccl.h HINTS ${tiller_nccl_hints} ${CUDAToolkit_INCLUDE_DIRS}
            PATH_SUFFIXES include)
  # The wheel ships only libnccl.so.2 (no unversioned link).
  find_library(TILLER_NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${tiller_nccl_hints}
               ${CUDAToolkit_LIBRARY_DIR} PATH_SUFFIXES lib lib64)
  if(TILLER_NCCL_INCLUDE_DIR AND TILLER_NCCL_LIBRARY)
    add_library(tiller_nccl INTERFACE IMPORTED)
    target_include_directories(tiller_nccl INTERFACE ${TILLER_NCCL_INCLUDE_DIR})
    target_link_libraries(tiller_nccl INTERFACE ${TILLER_NCCL_LIBRARY})
    set(TILLER_HAS_NCCL ON)
    message(STATUS "tiller: NCCL communicator ON (${TILLER_NCCL_LIBRARY})")
  endif()
endif()
if(NOT TILLER_HAS_NCCL)
  if(TILLER_NCCL STREQUAL "ON")
    message(FATAL_ERROR "tiller: TILLER_NCCL=ON but NCCL needs the CUDA backend (${TILLER_HAS_CUDA}), "
                        "MPI (${TILLER_HAS_MPI}) and nccl.h + libnccl (set NCCL_HOME or pip install "
                        "nvidia-nccl-cu12)")
  endif()
  message(STATUS "tiller: NCCL communicator OFF (needs CUDA, MPI and NCCL; CUDA ${TILLER_HAS_CUDA}, "
                 "MPI ${TILLER_HAS_MPI})")
endif()

function(tiller_distributed target)
  if(TILLER_HAS_MPI)
    target_compile_definitions(${target} PRIVATE TILLER_HAS_MPI=1)
    target_link_libraries(${target} PRIVATE MPI::MPI_CXX)
  endif()
  if(TILLER_HAS_NCCL)
    target_compile_definitions(${target} PRIVATE TILLER_HAS_NCCL=1)
    target_link_libraries(${target} PRIVATE tiller_nccl)
  endif()
endfunction()
