# ctest driver for the pipeline smoke test: runs `pipeline --tiny --ablation` into a scratch folder
# and checks
# that report.json is well formed: five models with every metric, the reward-model accuracy and
# the final KL, the knowledge columns (likelihood probe overall and per task, exact match on the
# pretrained facts and per task, the unseen-creature control and its chance), the KL of the PPO,
# DPO and GRPO models to the SFT model, seconds per stage, and that the plots exist; the curation
# stage's counts (2,000 pool rows curated to at most 200, per stage, per noise label) and the five
# ablation arms with every metric, where the decontaminated and clean arms hold no eval question
# and the full pool does (so it is scored on fewer prompts); and the reward model's accuracy on
# the SFT model's own mistakes has one pair per held-out prompt it got wrong; knowledge_headroom
# counts the SFT model's misses whose fact the base's probe knows (eval_base_probe.jsonl); the
# sft stage replays the pretraining shard (replay_loss in its metrics).
# Invoked as: cmake -DPIPELINE=<exe> -DOUT=<dir> -P pipeline_smoke.cmake
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${PIPELINE} --tiny --ablation --out ${OUT} RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "pipeline --tiny --ablation failed (${rc})")
endif()
file(READ ${OUT}/report.json report)
foreach(model base sft ppo dpo grpo)
  foreach(key exact_match format_compliance reward_model_score mean_response_tokens
              probe_accuracy probe_accuracy_creature_attributes exact_match_pretrained_facts
              accuracy_unseen_facts exact_match_unseen_facts)
    string(JSON value ERROR_VARIABLE error GET "${report}" models ${model} ${key})
    if(error OR value STREQUAL "")
      message(FATAL_ERROR "report.json: models.${model}.${key} missing (${error})")
    endif()
  endforeach()
  foreach(task colour home_town favourite_food age legs arithmetic spelling capitals)
    foreach(key probe_accuracy_per_task exact_match_per_task)
      string(JSON value ERROR_VARIABLE error GET "${report}" models ${model} ${key} ${task})
      if(error)
        message(FATAL_ERROR "report.json: models.${model}.${key}.${task} missing (${error})")
      endif()
    endforeach()
  endforeach()
  string(JSON probe GET "${report}" models ${model} probe_accuracy)
  if(probe LESS 0 OR probe GREATER 1)
    message(FATAL_ERROR "report.json: models.${model}.probe_accuracy ${probe} is not a rate")
  endif()
endforeach()
foreach(model ppo dpo grpo)
  string(JSON value ERROR_VARIABLE error GET "${report}" models ${model} kl_to_sft_k1)
  if(error)  # k1 may be negative on a finite sample; it must be there
    message(FATAL_ERROR "report.json: models.${model}.kl_to_sft_k1 missing (${error})")
  endif()
  foreach(key kl_to_sft train_seconds)
    string(JSON value ERROR_VARIABLE error GET "${report}" models ${model} ${key})
    if(error OR value STREQUAL "" OR value STREQUAL "null" OR value LESS 0)
      message(FATAL_ERROR "report.json: models.${model}.${key} missing or negative (${error})")
    endif()
  endforeach()
endforeach()
foreach(stage world pretrain curate sft reward ppo dpo grpo report ablation/evaluation total)
  string(JSON value ERROR_VARIABLE error GET "${report}" seconds ${stage})
  if(error OR value STREQUAL "" OR value STREQUAL "null")
    message(FATAL_ERROR "report.json: seconds.${stage} missing (${error})")
  endif()
endforeach()
# --jobs 2 (the default): the preference stages ran as two chains side by side, and the ablation's
# four SFT runs two at a time; each group's wall time covers its longest stage.
foreach(group_stages "preference;reward;ppo;dpo;grpo"
                     "ablation;ablation/random_1k;ablation/full_pool;ablation/clean_1k;ablation/homogeneous_1k")
  list(POP_FRONT group_stages group)
  string(JSON wall ERROR_VARIABLE error GET "${report}" seconds concurrent ${group} wall)
  if(error)
    message(FATAL_ERROR "report.json: seconds.concurrent.${group}.wall missing (${error})")
  endif()
  string(JSON count ERROR_VARIABLE error LENGTH "${report}" seconds concurrent ${group} stages)
  list(LENGTH group_stages expected)
  if(error OR NOT count EQUAL expected)
    message(FATAL_ERROR "report.json: seconds.concurrent.${group}.stages should list ${expected} stages, got '${count}' (${error})")
  endif()
  foreach(stage ${group_stages})
    string(JSON seconds GET "${report}" seconds ${stage})
    if(seconds GREATER wall)
      message(FATAL_ERROR "report.json: ${stage} took ${seconds} s, longer than its group's wall time ${wall} s")
    endif()
  endforeach()
endforeach()
foreach(key reward_model_heldout_accuracy ppo_final_kl eval_prompts chance_unseen_facts
            unseen_prompts)
  string(JSON value ERROR_VARIABLE error GET "${report}" ${key})
  if(error OR value STREQUAL "" OR value STREQUAL "null")
    message(FATAL_ERROR "report.json: ${key} missing or null (${error})")
  endif()
endforeach()
string(JSON prompts GET "${report}" eval_prompts)
if(NOT prompts EQUAL 16)
  message(FATAL_ERROR "report.json: expected 16 evaluated prompts, got ${prompts}")
endif()
# The reward model on the SFT model's own mistakes: one pair per held-out prompt it got wrong
# (eval_sft.jsonl), every pair scored.
file(STRINGS ${OUT}/eval_sft.jsonl sft_wrong REGEX "\"exact_match\":false")
list(LENGTH sft_wrong sft_wrong_count)
string(JSON mistake_pairs GET "${report}" reward_model_accuracy_on_sft_mistakes pairs)
string(JSON mistake_correct GET "${report}" reward_model_accuracy_on_sft_mistakes correct)
if(NOT mistake_pairs EQUAL sft_wrong_count OR mistake_correct GREATER mistake_pairs)
  message(FATAL_ERROR "report.json: reward_model_accuracy_on_sft_mistakes has ${mistake_correct} "
                      "of ${mistake_pairs} pairs; the SFT model got ${sft_wrong_count} wrong")
endif()
# The headroom after SFT, recounted from the per-prompt files: the SFT model's misses
# (eval_sft.jsonl) whose right value the base's probe ranked first (eval_base_probe.jsonl).
file(STRINGS ${OUT}/eval_base_probe.jsonl base_known REGEX "\"correct\":true")
set(known_misses 0)
foreach(line ${sft_wrong})
  string(REGEX MATCH "\"id\":([0-9]+)" match "${line}")
  set(id ${CMAKE_MATCH_1})
  foreach(probe ${base_known})
    if(probe MATCHES "\"id\":${id}[,}]")
      math(EXPR known_misses "${known_misses} + 1")
    endif()
  endforeach()
endforeach()
string(JSON headroom_known GET "${report}" knowledge_headroom base_knows_sft_misses)
string(JSON headroom_correct GET "${report}" knowledge_headroom sft_correct)
string(JSON headroom_questions GET "${report}" knowledge_headroom questions)
math(EXPR sft_right "${prompts} - ${sft_wrong_count}")
if(NOT headroom_known EQUAL known_misses OR NOT headroom_correct EQUAL sft_right OR
   NOT headroom_questions EQUAL prompts)
  message(FATAL_ERROR "report.json: knowledge_headroom says the base knows ${headroom_known} of "
                      "the SFT model's misses and SFT answers ${headroom_correct} of "
                      "${headroom_questions}; the files say ${known_misses}, ${sft_right} of ${prompts}")
endif()
# SFT replays the pretraining shard: its progress records carry the replay loss.
file(STRINGS ${OUT}/sft/metrics.jsonl replay_records REGEX "\"replay_loss\"")
if(NOT replay_records)
  message(FATAL_ERROR "sft/metrics.jsonl has no replay_loss record: the sft stage did not replay")
endif()
string(JSON rows_in GET "${report}" curation rows_in)
string(JSON rows_kept GET "${report}" curation rows_kept)
# Exactly the budget (200): CaR deals rows until the budget is full, and 544 of the 2,000 reach
# selection (the stages before the perplexity cut read no model; the cut keeps half of each
# instruction cluster).
if(NOT rows_in EQUAL 2000 OR NOT rows_kept EQUAL 200)
  message(FATAL_ERROR "report.json: curation kept ${rows_kept} of ${rows_in}, expected 200 of 2000")
endif()
string(JSON stage_count LENGTH "${report}" curation stages)
if(NOT stage_count EQUAL 6)
  message(FATAL_ERROR "report.json: curation.stages has ${stage_count} stages, expected 6")
endif()
foreach(index RANGE 5)
  foreach(key name rows_in rows_out removed_by_reason)
    string(JSON value ERROR_VARIABLE error GET "${report}" curation stages ${index} ${key})
    if(error)
      message(FATAL_ERROR "report.json: curation.stages[${index}].${key} missing (${error})")
    endif()
  endforeach()
endforeach()
foreach(noise clean wrong_fact leaked_eval)
  string(JSON value ERROR_VARIABLE error GET "${report}" curation noise_labels ${noise} kept)
  if(error)
    message(FATAL_ERROR "report.json: curation.noise_labels.${noise}.kept missing (${error})")
  endif()
endforeach()
string(JSON leaked_kept GET "${report}" curation noise_labels leaked_eval kept)
if(NOT leaked_kept EQUAL 0)
  message(FATAL_ERROR "report.json: ${leaked_kept} leaked eval rows survived decontamination")
endif()
foreach(arm curated_1k random_1k full_pool clean_1k homogeneous_1k)
  foreach(key exact_match probe_accuracy format_compliance rambling_rate ends_turn
              mean_response_tokens training_steps training_tokens train_seconds
              leaked_eval_questions eval_prompts)
    string(JSON value ERROR_VARIABLE error GET "${report}" ablation arms ${arm} ${key})
    if(error OR value STREQUAL "" OR value STREQUAL "null")
      message(FATAL_ERROR "report.json: ablation.arms.${arm}.${key} missing (${error})")
    endif()
  endforeach()
  string(JSON value ERROR_VARIABLE error GET "${report}" ablation arms ${arm}
         tasks_homogeneous_arm_never_saw format_compliance)
  if(error)
    message(FATAL_ERROR "report.json: ablation.arms.${arm}.tasks_homogeneous_arm_never_saw missing")
  endif()
  string(JSON tokens GET "${report}" ablation arms ${arm} training_tokens)
  if(NOT tokens GREATER 0)
    message(FATAL_ERROR "report.json: ablation.arms.${arm} trained on ${tokens} tokens")
  endif()
endforeach()
foreach(arm curated_1k clean_1k homogeneous_1k)
  string(JSON leaked GET "${report}" ablation arms ${arm} leaked_eval_questions)
  string(JSON scored GET "${report}" ablation arms ${arm} eval_prompts)
  if(NOT leaked EQUAL 0 OR NOT scored EQUAL 16)
    message(FATAL_ERROR "report.json: arm ${arm}: ${leaked} leaked questions, ${scored} scored")
  endif()
endforeach()
string(JSON leaked GET "${report}" ablation arms full_pool leaked_eval_questions)
string(JSON scored GET "${report}" ablation arms full_pool eval_prompts)
if(NOT leaked GREATER 0 OR NOT scored LESS 16)
  message(FATAL_ERROR "report.json: full_pool: ${leaked} leaked eval questions, ${scored} scored; "
                      "the pool's leaked rows should be found and left out of its scoring")
endif()
# The reward model's held-out accuracy per kind of rejected answer: the four kinds, each a number.
foreach(kind wrong_fact malformed rambling missing_end_of_turn)
  string(JSON value ERROR_VARIABLE error GET "${report}"
         reward_model_heldout_accuracy_by_rejection ${kind})
  if(error OR NOT value MATCHES "^[0-9.e+-]+$")
    message(FATAL_ERROR "report.json: reward_model_heldout_accuracy_by_rejection.${kind} missing "
                        "or not a number: '${value}' ${error}")
  endif()
endforeach()
# The seed's claims: one per claim (knowledge, control, exact match, format, quality, diversity,
# reward model overall and on wrong facts, PPO, two budgets), each with a measure, a target and a
# verdict.
string(JSON claim_count LENGTH "${report}" claims)
if(NOT claim_count EQUAL 11)
  message(FATAL_ERROR "report.json: expected 11 claims, got ${claim_count}")
endif()
math(EXPR last_claim "${claim_count} - 1")
foreach(index RANGE ${last_claim})
  foreach(key claim measure target met)
    string(JSON value ERROR_VARIABLE error GET "${report}" claims ${index} ${key})
    if(error OR value STREQUAL "")
      message(FATAL_ERROR "report.json: claims[${index}].${key} missing (${error})")
    endif()
  endforeach()
endforeach()
file(READ ${OUT}/report.md report_md)
if(NOT report_md MATCHES "## The seed's claims")
  message(FATAL_ERROR "report.md has no claims table")
endif()
foreach(file report.md loss_curves.png reward_model_accuracy.png ppo_reward_kl.png
             ablation_exact_match.png ablation_format_compliance.png ablation_probe_accuracy.png
             ablation_rambling_rate.png ablation_ends_turn.png ablation_mean_response_tokens.png
             ablation_training_tokens.png)
  if(NOT EXISTS ${OUT}/${file})
    message(FATAL_ERROR "pipeline: ${file} was not written")
  endif()
endforeach()

# A stage that fails beside others: DPO gets a flag it does not know. Its chain stops (no GRPO),
# the other chain (reward model, PPO) still finishes, and the error names DPO and its log.
set(FAIL_OUT ${OUT}_failing_stage)
file(REMOVE_RECURSE ${FAIL_OUT})
execute_process(COMMAND ${PIPELINE} --tiny --out ${FAIL_OUT} --dpo-args=--no-such-flag
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "pipeline with a failing dpo stage exited 0")
endif()
if(NOT err MATCHES "dpo \\(${FAIL_OUT}/logs/dpo.log\\)")
  message(FATAL_ERROR "the error does not name the dpo stage and its log:\n${err}")
endif()
if(NOT EXISTS ${FAIL_OUT}/ppo/policy OR EXISTS ${FAIL_OUT}/grpo)
  message(FATAL_ERROR "a failing dpo stage should let reward + ppo finish and stop grpo")
endif()
message(STATUS "pipeline smoke test: report.json and plots are well formed; a failing stage is named")
