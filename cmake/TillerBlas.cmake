# Finds OpenBLAS for the CPU GEMM. Defines the interface target tiller_blas, which carries
# TILLER_HAVE_CBLAS when OpenBLAS and its cblas.h were found; otherwise the CPU backend uses its
# built-in blocked GEMM (correct, several times slower).
add_library(tiller_blas INTERFACE)
set(BLA_VENDOR OpenBLAS)
find_package(BLAS QUIET)
find_path(TILLER_CBLAS_INCLUDE_DIR cblas.h
  PATHS /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu
  PATH_SUFFIXES openblas-pthread openblas64-pthread openblas "")
if(BLAS_FOUND AND TILLER_CBLAS_INCLUDE_DIR)
  target_link_libraries(tiller_blas INTERFACE BLAS::BLAS)
  target_include_directories(tiller_blas INTERFACE ${TILLER_CBLAS_INCLUDE_DIR})
  target_compile_definitions(tiller_blas INTERFACE TILLER_HAVE_CBLAS=1)
  message(STATUS "tiller: CPU GEMM uses OpenBLAS (${BLAS_LIBRARIES})")
else()
  message(STATUS "tiller: OpenBLAS not found - the CPU GEMM uses the built-in blocked fallback, "
                 "which is slower; install libopenblas-dev for full CPU speed")
endif()
