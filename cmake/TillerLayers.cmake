# tiller_layer(<name> SOURCES <files...> [LAYERS_BELOW <layers...>])
# Builds one layer of the library (kernels, core, optim, rl) as the object library
# tiller_<name>. Its sources see a staged include root, ${build}/layers/<name>/, that links to the
# layer's own folder and to the folders of the layers below it, and nothing else: an upward
# include (core including "rl/...") fails to compile. The objects are linked into tiller::tiller.
function(tiller_layer name)
  cmake_parse_arguments(arg "" "" "SOURCES;LAYERS_BELOW" ${ARGN})
  set(root ${PROJECT_BINARY_DIR}/layers/${name})
  file(MAKE_DIRECTORY ${root})
  foreach(visible ${name} ${arg_LAYERS_BELOW})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/${visible} ${root}/${visible} SYMBOLIC)
  endforeach()
  add_library(tiller_${name} OBJECT ${arg_SOURCES})
  target_include_directories(tiller_${name} PRIVATE ${root})
  target_compile_features(tiller_${name} PRIVATE cxx_std_20)
  target_link_libraries(tiller_${name} PRIVATE fmt::fmt OpenMP::OpenMP_CXX Threads::Threads
                                               tiller_blas tiller_pcre2
                                               nlohmann_json::nlohmann_json)
  set_target_properties(tiller_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  if(TILLER_HAS_CUDA)
    target_compile_definitions(tiller_${name} PRIVATE TILLER_HAS_CUDA=1)
    target_link_libraries(tiller_${name} PRIVATE CUDA::cudart CUDA::cublas CUDA::cublasLt)
    set_target_properties(tiller_${name} PROPERTIES CUDA_STANDARD 20 CUDA_STANDARD_REQUIRED ON)
  endif()
  tiller_warnings(tiller_${name})
endfunction()
