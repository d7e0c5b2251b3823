# Finds PCRE2 (8-bit, Debian's libpcre2-dev), whose Unicode tables give the GPT-2 pre-tokeniser its
# character classes (core/text/unicode_classes.cpp). Defines the interface target tiller_pcre2.
# find_path / find_library rather than pkg-config: they honour CMAKE_PREFIX_PATH, which is how the
# bare GPU machine finds the unpacked bundle of bench/device-deps.
find_path(TILLER_PCRE2_INCLUDE_DIR pcre2.h)
find_library(TILLER_PCRE2_LIBRARY NAMES pcre2-8)
if(NOT TILLER_PCRE2_INCLUDE_DIR OR NOT TILLER_PCRE2_LIBRARY)
  message(FATAL_ERROR "tiller: PCRE2 not found (pcre2.h, libpcre2-8); install libpcre2-dev")
endif()
add_library(tiller_pcre2 INTERFACE)
target_include_directories(tiller_pcre2 INTERFACE ${TILLER_PCRE2_INCLUDE_DIR})
target_link_libraries(tiller_pcre2 INTERFACE ${TILLER_PCRE2_LIBRARY})
message(STATUS "tiller: Unicode classes from PCRE2 (${TILLER_PCRE2_LIBRARY})")
