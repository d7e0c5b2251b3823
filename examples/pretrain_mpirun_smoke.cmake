# ctest driver: the README's `mpirun -np 2 pretrain` at a tiny size, then `--resume` of its
# checkpoint in one process. Checks that rank 0 alone wrote the metrics (one record per step, with
# the communication time), that the final model exists, and that the 1-process resume continues
# from the 2-rank checkpoint to the new step count.
# Invoked as: cmake -DMPIRUN=<mpirun> -DPRETRAIN=<exe> -DOUT=<dir> -P pretrain_mpirun_smoke.cmake
file(REMOVE_RECURSE ${OUT})
set(tiny --layers 1 --width 32 --heads 2 --entities 240 --seq-len 32 --batch 4
         --eval-batches 1 --eval-every 0 --sample-every 0 --log-every 1 --out ${OUT})
execute_process(
  COMMAND ${MPIRUN} --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 ${PRETRAIN}
          ${tiny} --steps 4 --checkpoint-every 2 --zero 1
  RESULT_VARIABLE rc OUTPUT_VARIABLE output ERROR_VARIABLE output)
message("${output}")
if(rc)
  message(FATAL_ERROR "mpirun -np 2 pretrain failed (${rc})")
endif()
file(STRINGS ${OUT}/metrics.jsonl steps REGEX "\"comm_seconds\"")
list(LENGTH steps count)
if(NOT count EQUAL 4)
  message(FATAL_ERROR "metrics.jsonl: expected 4 step records with comm_seconds (rank 0 only), got ${count}")
endif()
if(NOT EXISTS ${OUT}/model/model.safetensors OR NOT EXISTS ${OUT}/checkpoints/step_000002)
  message(FATAL_ERROR "the 2-rank run did not leave model/ and checkpoints/step_000002")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env OMP_NUM_THREADS=1 ${PRETRAIN} --out ${OUT} --resume --steps 6
                RESULT_VARIABLE rc OUTPUT_VARIABLE output ERROR_VARIABLE output)
message("${output}")
if(rc OR NOT output MATCHES "resumed from .* at step 4")
  message(FATAL_ERROR "resuming the 2-rank run in one process failed (${rc})")
endif()
file(STRINGS ${OUT}/metrics.jsonl steps REGEX "\"tokens_per_sec\"")
list(LENGTH steps count)
if(NOT count EQUAL 6)
  message(FATAL_ERROR "metrics.jsonl: expected 6 step records after the resume, got ${count}")
endif()
