# ctest driver for the two "applying the model" experiments at a tiny size: a tiny base pretrained
# on a 40-creature world, then continued pretraining on the new region (domain --tiny) and the
# few-shot sweep (evaluate --sweep) on that base; checks that each report holds every point.
# Invoked as: cmake -DPRETRAIN=<exe> -DDOMAIN=<exe> -DEVALUATE=<exe> -DOUT=<dir> -P apply_smoke.cmake
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${PRETRAIN} --layers 2 --width 64 --heads 2 --seq-len 64 --batch 4
                        --steps 10 --vocab-size 512 --eval-every 10 --log-every 10
                        --sample-every 0 --entities 40 --out ${OUT}/base
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "pretrain (tiny base) failed (${rc})")
endif()
execute_process(COMMAND ${DOMAIN} --tiny --base ${OUT}/base --entities 40 --out ${OUT}/domain
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "domain --tiny failed (${rc})")
endif()
file(READ ${OUT}/domain/domain.json report)
string(JSON probes LENGTH "${report}" probes)
# base + 2 arms x (step 0, 2, 4)
if(NOT probes EQUAL 7)
  message(FATAL_ERROR "domain.json: expected 7 probes, got ${probes}")
endif()
execute_process(COMMAND ${EVALUATE} --sweep --model base=${OUT}/base/model --entities 40
                        --limit 4 --max-new-tokens 12 --sweep-shots 0 2 --out ${OUT}/few_shot
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(rc)
  message(FATAL_ERROR "evaluate --sweep failed (${rc})")
endif()
file(READ ${OUT}/few_shot/few_shot.json report)
string(JSON points LENGTH "${report}" points)
# 1 model x 2 formats x 4 settings x 2 k
if(NOT points EQUAL 16)
  message(FATAL_ERROR "few_shot.json: expected 16 points, got ${points}")
endif()
foreach(file domain/domain.md domain/probes.jsonl few_shot/few_shot.md few_shot/few_shot.jsonl)
  if(NOT EXISTS ${OUT}/${file})
    message(FATAL_ERROR "missing ${OUT}/${file}")
  endif()
endforeach()
