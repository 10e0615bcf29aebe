#!/usr/bin/env bash
# The GitHub Action's one step (action.yml): run reconciler for the event, write the job summary,
# keep the pull request's comment or the drift issue, set the step's outputs. Inputs come as
# environment variables (never pasted into the script): RECONCILER_COMMAND, RECONCILER_PATHS,
# RECONCILER_TARGET_NAME, RECONCILER_ARGS, EVENT_NAME, GITHUB_REF, DEFAULT_BRANCH, GITHUB_TOKEN.
set -euo pipefail

read -ra paths <<< "${RECONCILER_PATHS:-.}"
read -ra extra <<< "${RECONCILER_ARGS:-}"
target_flag=()
if [[ -n "${RECONCILER_TARGET_NAME:-}" ]]; then
  target_flag=(--target "$RECONCILER_TARGET_NAME")
fi

command="${RECONCILER_COMMAND:-}"
if [[ -z "$command" ]]; then
  case "${EVENT_NAME:-}" in
    schedule) command=drift ;;
    push)
      if [[ "${GITHUB_REF:-}" == "refs/heads/${DEFAULT_BRANCH:-}" ]]; then command=apply; else command=plan; fi ;;
    *) command=plan ;;
  esac
fi

# one directory per target and paths, so that a matrix of them never shares files
key="$(printf '%s-%s' "${RECONCILER_TARGET_NAME:-default}" "${paths[*]}" | tr -c 'A-Za-z0-9._-' '-')"
work="${RUNNER_TEMP:-/tmp}/reconciler-$key"
mkdir -p "$work"
summary="${GITHUB_STEP_SUMMARY:-/dev/null}"
output="${GITHUB_OUTPUT:-/dev/null}"

# the job summary takes 1 MiB a step: a long text is cut, the artifact or the log holds it all
fenced() {
  printf '### reconciler %s\n\n```\n' "$1"
  head -c 900000 "$2"
  printf '\n```\n'
}

outputs() {  # exit-code has-changes
  printf 'exit-code=%s\nhas-changes=%s\n' "$1" "$2" >> "$output"
}

code=0
case "$command" in
  plan)
    plan="$work/plan.json"
    reconciler plan "${paths[@]}" "${target_flag[@]}" --format markdown --out "$plan" \
      --detailed-exitcode "${extra[@]}" > "$work/plan.md" || code=$?
    cat "$work/plan.md" >> "$summary"
    if [[ -s "$work/plan.md" && "${EVENT_NAME:-}" == pull_request* ]]; then
      reconciler ci comment "$work/plan.md"
    fi
    if [[ -f "$plan" ]]; then
      # the whole plan, every id, beside the saved plan in the artifact (no live read)
      reconciler show "$plan" --show-all > "$work/plan.txt"
      {
        echo "plan-path=$plan"
        echo "artifact-name=reconciler-plan-$key"
        echo "artifact-dir=$work"
      } >> "$output"
    fi
    outputs "$code" "$([[ $code == 2 ]] && echo true || echo false)"
    [[ $code == 1 ]] && exit 1
    ;;
  apply)
    result="$work/apply.json"
    reconciler apply "${paths[@]}" "${target_flag[@]}" --auto-approve --format json \
      "${extra[@]}" > "$result" 2> "$work/apply.txt" || code=$?
    cat "$work/apply.txt" >&2  # the plan and the summary, for the log
    fenced apply "$work/apply.txt" >> "$summary"
    changes=false
    if [[ -s "$result" ]] && grep -q '"hasChanges": true' "$result"; then changes=true; fi
    outputs "$code" "$changes"
    echo "result-path=$result" >> "$output"
    # 1 nothing applied, 3 partly applied, 128+N interrupted: the job fails
    [[ $code != 0 ]] && exit 1
    ;;
  drift)
    reconciler drift "${paths[@]}" "${target_flag[@]}" --format markdown "${extra[@]}" \
      > "$work/drift.md" || code=$?
    cat "$work/drift.md" >> "$summary"
    outputs "$code" "$([[ $code == 2 ]] && echo true || echo false)"
    [[ $code == 1 ]] && exit 1
    name="$(sed -n 's/^<!-- reconciler drift target=\([^ ]*\) .*/\1/p' "$work/drift.md")"
    title="reconciler: drift on target $name"
    if [[ $code == 2 ]]; then
      reconciler ci issue "$work/drift.md" --title "$title"
    else
      reconciler ci issue "$work/drift.md" --title "$title" --close
    fi
    ;;
  *)
    echo "error: command must be plan, apply or drift, not '$command'" >&2
    exit 1
    ;;
esac
exit 0
