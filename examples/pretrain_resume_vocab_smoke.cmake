# ctest driver: a pretraining run with a non-default --vocab-size, resumed without the flag, keeps
# its data and tokenizer (regression: the resume used to rebuild <out>/data with the flag's default
# vocabulary of 1024 and then stopped on the model's 300).
# Invoked as: cmake -DPRETRAIN=<exe> -DOUT=<dir> -P pretrain_resume_vocab_smoke.cmake
file(REMOVE_RECURSE ${OUT})
execute_process(
  COMMAND ${PRETRAIN} --layers 1 --width 32 --heads 2 --seq-len 32 --batch 4 --vocab-size 300
          --eval-batches 1 --eval-every 0 --sample-every 0 --steps 4 --checkpoint-every 2
          --out ${OUT}
  RESULT_VARIABLE rc OUTPUT_VARIABLE output ERROR_VARIABLE output)
message("${output}")
if(rc)
  message(FATAL_ERROR "pretrain --vocab-size 300 failed (${rc})")
endif()
file(SHA256 ${OUT}/data/train.bin before)
execute_process(COMMAND ${PRETRAIN} --out ${OUT} --resume --steps 6
                RESULT_VARIABLE rc OUTPUT_VARIABLE output ERROR_VARIABLE output)
message("${output}")
if(rc OR NOT output MATCHES "resumed from .* at step 4" OR NOT output MATCHES "vocab 300")
  message(FATAL_ERROR "resuming without --vocab-size did not continue on the run's data (${rc})")
endif()
file(SHA256 ${OUT}/data/train.bin after)
if(NOT before STREQUAL after)
  message(FATAL_ERROR "the resume rewrote data/train.bin")
endif()
