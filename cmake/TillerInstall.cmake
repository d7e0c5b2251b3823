# Installs the library, its public headers and a CMake package so that other projects can write
#   find_package(tiller REQUIRED)
#   target_link_libraries(app PRIVATE tiller::tiller)
include(CMakePackageConfigHelpers)

install(TARGETS tiller EXPORT tillerTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY core kernels optim rl
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tiller
  FILES_MATCHING PATTERN "*.h"
  PATTERN "cpu" EXCLUDE PATTERN "cuda" EXCLUDE PATTERN "nocuda" EXCLUDE
  # internal headers: how ops dispatch and check, and the world generator's tables
  PATTERN "dispatch.h" EXCLUDE PATTERN "op_checks.h" EXCLUDE PATTERN "world_detail.h" EXCLUDE
  PATTERN "tensor_checks.h" EXCLUDE)
install(FILES tiller.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tiller)
install(EXPORT tillerTargets NAMESPACE tiller::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tiller)
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/tillerConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/tillerConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tiller)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/tillerConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/tillerConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/tillerConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/tiller)
