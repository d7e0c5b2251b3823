# Decides whether the CUDA backend is built (TILLER_CUDA = AUTO | ON | OFF) and enables CUDA.
# Sets TILLER_HAS_CUDA. Default architectures: 80 and 90 (A100, H100/H200); override with
# -DCMAKE_CUDA_ARCHITECTURES=...
set(TILLER_HAS_CUDA OFF)
if(NOT TILLER_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    # CMake < 3.26 has no C++20 flag for nvcc; CUDA_STANDARD 20 then fails at generate time.
    if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    endif()
    # fmt turns constexpr off under __NVCC__, which then breaks its C++20 consteval format
    # checks in .cu files that include kernels/error.h; nvcc 12+ handles fmt's constexpr fine.
    add_compile_definitions($<$<COMPILE_LANGUAGE:CUDA>:FMT_USE_CONSTEXPR=1>)
    set(TILLER_HAS_CUDA ON)
  elseif(TILLER_CUDA STREQUAL "ON")
    message(FATAL_ERROR "tiller: TILLER_CUDA=ON but no CUDA compiler was found; set "
                        "CMAKE_CUDA_COMPILER or use -DTILLER_CUDA=AUTO")
  endif()
endif()
if(TILLER_HAS_CUDA)
  message(STATUS "tiller: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                 "architectures ${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "tiller: CUDA backend OFF (CUDA entry points throw tiller::Error)")
endif()
