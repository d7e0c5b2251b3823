# ctest driver for the curate CLI end to end: writes the built-in world's data with make_world,
# curates its SFT chats + corpus + preference pairs against its eval questions to a budget, and
# checks the outputs: every row is either kept or in rejected.jsonl, report.json is well formed,
# the budget is met; a malformed line stops the run with file:line, or is listed under
# --skip-malformed.
# Invoked as: cmake -DCURATE=<exe> -DMAKE_WORLD=<exe> -DOUT=<dir> -P curate_smoke.cmake
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${MAKE_WORLD} --out ${OUT}/world --seed 1 RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "make_world failed (${rc})")
endif()
execute_process(COMMAND ${CURATE} --input ${OUT}/world/sft.jsonl ${OUT}/world/corpus.txt
                        ${OUT}/world/preferences_train.jsonl --eval ${OUT}/world/eval.jsonl
                        --budget 300 --out ${OUT}/curated --quiet
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "curate failed (${rc})")
endif()
file(READ ${OUT}/curated/report.json report)
string(JSON rows_in GET "${report}" rows_in)
string(JSON rows_kept GET "${report}" rows_kept)
string(JSON stages LENGTH "${report}" stages)
if(NOT rows_kept EQUAL 300 OR NOT stages EQUAL 6)
  message(FATAL_ERROR "report.json: expected 300 rows kept over 6 stages, got ${rows_kept}, ${stages}")
endif()
file(STRINGS ${OUT}/curated/curated.jsonl kept)
file(STRINGS ${OUT}/curated/rejected.jsonl rejected)
list(LENGTH kept n_kept)
list(LENGTH rejected n_rejected)
math(EXPR total "${n_kept} + ${n_rejected}")
if(NOT n_kept EQUAL rows_kept OR NOT total EQUAL rows_in)
  message(FATAL_ERROR "curate: ${n_kept} kept + ${n_rejected} rejected lines for ${rows_in} rows in")
endif()
foreach(file report.md rows_per_stage.gp)
  if(NOT EXISTS ${OUT}/curated/${file})
    message(FATAL_ERROR "curate: ${file} was not written")
  endif()
endforeach()

file(WRITE ${OUT}/bad.jsonl "{\"text\": \"fine\"}\n{\"messages\": 3}\n")
execute_process(COMMAND ${CURATE} --input ${OUT}/bad.jsonl --out ${OUT}/bad --quiet
                RESULT_VARIABLE rc ERROR_VARIABLE error)
if(NOT rc OR NOT error MATCHES "bad.jsonl:2: \"messages\" must be an array")
  message(FATAL_ERROR "curate: a malformed line should stop with bad.jsonl:2 (${rc}: ${error})")
endif()
execute_process(COMMAND ${CURATE} --input ${OUT}/bad.jsonl --out ${OUT}/bad --quiet
                        --skip-malformed RESULT_VARIABLE rc)
file(READ ${OUT}/bad/rejected.jsonl rejected)
if(rc OR NOT rejected MATCHES "\"reason\":\"malformed\"")
  message(FATAL_ERROR "curate --skip-malformed: the malformed line is not in rejected.jsonl")
endif()
message(STATUS "curate smoke test: outputs account for every row; malformed lines handled")
