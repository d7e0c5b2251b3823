# tiller_warnings(target): the project's warning flags (-Wall -Wextra, for C++ and for the host
# side of CUDA). Sanitizers (TILLER_SANITIZE, TILLER_FUZZ) are applied globally here, to every
# target the including file defines after it.
function(tiller_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra>
    $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
endfunction()

if(TILLER_SANITIZE)
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-sanitize-recover=undefined>)
  add_link_options(-fsanitize=address,undefined)
endif()

# Fuzzing: coverage instrumentation plus ASan/UBSan for everything; only the harness executables
# (tests/fuzz) link libFuzzer's main with -fsanitize=fuzzer.
if(TILLER_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "TILLER_FUZZ needs clang (libFuzzer); use the 'fuzz' preset")
  endif()
  # -Wno-pass-failed: at -O1 with instrumentation clang cannot honour `omp simd` and says so for
  # every such loop; the fuzz build is not about speed.
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link,address,undefined>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-sanitize-recover=undefined>
                      $<$<COMPILE_LANGUAGE:CXX>:-Wno-pass-failed>)
  add_link_options(-fsanitize=address,undefined)
endif()
