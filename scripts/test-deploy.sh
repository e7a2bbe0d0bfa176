#!/usr/bin/env bash
# Checks deploy/ without a Docker engine or a cluster (none runs on the development and CI
# machines):
#   * the Helm chart: `helm lint --strict`, `helm template` of every deploy/helm/backflow/ci
#     values file with and without the KEDA API, validated by kubeconform in strict mode
#     against offline schemas (Kubernetes' from the kubernetes-validate wheel on PyPI, KEDA's
#     CRDs from its Go module), plus values the chart must refuse;
#   * compose.yaml and the Dockerfile, parsed and checked by deploy/test/check_deploy.py.
# Installs helm and kubeconform with `go install` into /var/tmp/backflow-tools/bin (or
# $BACKFLOW_TOOLS_DIR/bin): minutes on a fresh machine, nothing when they are there.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
tools="${BACKFLOW_TOOLS_DIR:-/var/tmp/backflow-tools}"
bin="$tools/bin"
export PATH="$bin:$PATH"
export GOBIN="$bin"

helm_version=v3.22.0
kubeconform_version=v0.8.0
kube_version=1.34.0
kubernetes_validate_version=1.37.0
keda_version=v2.21.0

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

mkdir -p "$bin" "$tools/downloads"
work="$(mktemp -d)"
pids=()
# On an early exit, stop the installs still running in the background.
cleanup() {
  for pid in ${pids[@]+"${pids[@]}"}; do
    pkill -P "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# --- tools (installed in parallel on a fresh machine) ------------------------------------
# The module version a binary was built from (`go install` builds report no version of their own).
built_from() { command -v "$1" >/dev/null && go version -m "$(command -v "$1")" | awk '$1 == "mod" { print $2 "@" $3 }'; }
if [[ "$(built_from helm)" != helm.sh/helm/v[34]@* ]]; then
  echo "installing helm $helm_version (go install, a few minutes)"
  ( go install "helm.sh/helm/v3/cmd/helm@$helm_version" >"$work/helm-install.log" 2>&1 \
    || go install "helm.sh/helm/v4/cmd/helm@latest" >>"$work/helm-install.log" 2>&1 \
    || { cat "$work/helm-install.log"; exit 1; } ) &
  pids+=($!)
fi
if [[ "$(built_from kubeconform)" != "github.com/yannh/kubeconform@$kubeconform_version" ]]; then
  echo "installing kubeconform $kubeconform_version"
  ( go install "github.com/yannh/kubeconform/cmd/kubeconform@$kubeconform_version" >"$work/kc-install.log" 2>&1 \
    || { cat "$work/kc-install.log"; exit 1; } ) &
  pids+=($!)
fi

if ! python3 -c 'import yaml' 2>/dev/null; then
  pip install --quiet --target "$tools/python" pyyaml
  export PYTHONPATH="$tools/python${PYTHONPATH:+:$PYTHONPATH}"
fi

# --- offline schemas --------------------------------------------------------------------
stamp="k8s-$kube_version-kv-$kubernetes_validate_version-keda-$keda_version-$(sha256sum "$repo/deploy/test/k8s_schemas.py" | cut -c1-12)"
schemas="$tools/kube-schemas/$stamp"
if [[ ! -f "$schemas/.done" ]]; then
  wheel="$tools/downloads/kubernetes_validate-$kubernetes_validate_version-py3-none-any.whl"
  [[ -f "$wheel" ]] || pip download --quiet --no-deps -d "$tools/downloads" "kubernetes-validate==$kubernetes_validate_version"
  keda_dir="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/kedacore/keda/v2@$keda_version" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  rm -rf "$schemas"
  python3 "$repo/deploy/test/k8s_schemas.py" "$wheel" "v$kube_version" \
    "$keda_dir/config/crd/bases/keda.sh_scaledobjects.yaml" \
    "$keda_dir/config/crd/bases/keda.sh_triggerauthentications.yaml" "$schemas"
  touch "$schemas/.done"
fi

for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid"; done
pids=()

kubeconform_strict() {
  kubeconform -strict -summary -kubernetes-version "$kube_version" \
    -schema-location "$schemas/{{ .NormalizedKubernetesVersion }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -schema-location "$schemas/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" "$@"
}

# --- the chart --------------------------------------------------------------------------
chart="$repo/deploy/helm/backflow"
rendered=()
for values in "$chart"/ci/*-values.yaml; do
  name="$(basename "$values" -values.yaml)"
  if helm lint --strict --kube-version "$kube_version" "$chart" -f "$values" >"$work/lint.log" 2>&1; then
    pass "helm lint $name"
  else
    cat "$work/lint.log"; fail "helm lint $name"
  fi
  for keda in without-keda with-keda; do
    out="$work/$name-$keda.yaml"
    args=(template backflow "$chart" -f "$values" --kube-version "$kube_version" --namespace backflow)
    [[ "$keda" == with-keda ]] && args+=(--api-versions keda.sh/v1alpha1)
    if helm "${args[@]}" >"$out" 2>"$work/template.log"; then
      pass "helm template $name $keda"
      rendered+=("$out")
    else
      cat "$work/template.log"; fail "helm template $name $keda"
    fi
  done
done
# One kubeconform process for every render: it compiles each schema once.
if kubeconform_strict "${rendered[@]}" >"$work/kc.log" 2>&1; then
  pass "kubeconform -strict: $(tail -n1 "$work/kc.log")"
else
  cat "$work/kc.log"; fail "kubeconform -strict"
fi

# Which autoscaler: KEDA where its API is served (auto), an HPA on CPU otherwise.
kinds() { grep -E '^kind: ' "$1" | sort | uniq -c | tr -s ' ' | tr '\n' ';'; }
auto_off="$work/default-without-keda.yaml"
auto_on="$work/default-with-keda.yaml"
if grep -q '^kind: HorizontalPodAutoscaler' "$auto_off" && ! grep -q '^kind: ScaledObject' "$auto_off" \
  && grep -q '^kind: ScaledObject' "$auto_on" && grep -q '^kind: TriggerAuthentication' "$auto_on" \
  && ! grep -q '^kind: HorizontalPodAutoscaler' "$auto_on"; then
  pass "autoscaling auto: HPA without KEDA, ScaledObject with it"
else
  fail "autoscaling auto: without KEDA [$(kinds "$auto_off")] with KEDA [$(kinds "$auto_on")]"
fi
for kind in PodDisruptionBudget Service Secret; do
  grep -q "^kind: $kind" "$auto_off" || fail "default render has no $kind"
done
# Snapshots live in object storage: no volume to share, the URL and the object store's
# settings on the control plane, its credentials Secret on every Backflow container.
env_secret="$work/existing-secret-env-without-keda.yaml"
if ! grep -q '^kind: PersistentVolumeClaim' "$auto_off" && ! grep -q 'persistentVolumeClaim' "$auto_off" \
  && grep -A1 'name: BACKFLOW__CONTROL_PLANE__SNAPSHOTS$' "$auto_off" | grep -qF '"s3://backflow-snapshots/prod"' \
  && grep -q 'name: BACKFLOW__CONTROL_PLANE__SNAPSHOT_GC_GRACE_SECS' "$auto_off" \
  && [[ "$(grep -c 'name: backflow-object-store' "$env_secret")" -eq 2 ]] \
  && grep -A1 'name: AWS_REGION$' "$work/keda-without-keda.yaml" | grep -qF '"eu-west-1"'; then
  pass "snapshots in object storage: no volume claim; URL, settings and credentials Secret on the pods"
else
  fail "snapshots in object storage renders"
fi
if grep -q 'helm.sh/hook: test' "$auto_off" && grep -q -- '- migrate' "$auto_off"; then
  pass "default render has the helm test hook and the migrate init container"
else
  fail "default render lacks the helm test hook or the migrate init container"
fi
if ! grep -q '^kind: Secret' "$work/existing-secret-env-without-keda.yaml" \
  && grep -q 'name: backflow-credentials' "$work/existing-secret-env-without-keda.yaml" \
  && grep -qF -- "\${file:/etc/backflow/secrets/store-url}" "$work/existing-secret-file-without-keda.yaml"; then
  pass "existingSecret: no Secret created; env and file modes reference it"
else
  fail "existingSecret renders"
fi

# Values the chart must refuse, with a message naming the value.
refuse() {
  local what="$1" expect="$2"; shift 2
  if helm template backflow "$chart" --kube-version "$kube_version" "$@" >/dev/null 2>"$work/refuse.log"; then
    fail "chart accepted $what"
  elif grep -qE "$expect" "$work/refuse.log"; then
    pass "chart refuses $what"
  else
    cat "$work/refuse.log"; fail "chart refuses $what without naming $expect"
  fi
}
refuse "a release without a store" "secrets.store"
refuse "a store that is not PostgreSQL" "secrets.store" --set secrets.store=sqlite:/data/state.db
refuse "an unknown autoscaling mode" "/worker/autoscaling/mode" --set secrets.store=postgres://a@b/c --set worker.autoscaling.mode=cpu
refuse "an unknown secrets mode" "/secrets/mode" --set secrets.store=postgres://a@b/c --set secrets.mode=vault
refuse "a misspelled value" "'autoscalling' not allowed" --set secrets.store=postgres://a@b/c --set worker.autoscalling.mode=keda
refuse "a release without a snapshot URL" "snapshots.url" --set secrets.store=postgres://a@b/c
refuse "a local snapshot directory" "snapshots.url must be" --set secrets.store=postgres://a@b/c --set snapshots.url=/var/lib/backflow/snapshots
refuse "a snapshot URL with credentials" "without credentials" --set secrets.store=postgres://a@b/c --set snapshots.url=s3://AKIAEXAMPLE:not-for-logs@bucket/p
if grep -q 'not-for-logs' "$work/refuse.log"; then
  fail "the chart's refusal quotes the snapshot URL's credentials"
else
  pass "the chart's refusal does not quote the snapshot URL's credentials"
fi

# The schemas really are strict: an unknown field is an error, not a pass.
sed -e 's/^  selector:$/  selectorr:/' "$auto_on" >"$work/broken.yaml"
printf -- '---\napiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: x}\n  triggers: []\n  minReplicas: 1\n' >>"$work/broken.yaml"
if kubeconform_strict "$work/broken.yaml" >"$work/kc.log" 2>&1; then
  fail "kubeconform accepted unknown fields"
elif grep -q "'selectorr' not allowed" "$work/kc.log" && grep -q "'minReplicas' not allowed" "$work/kc.log"; then
  pass "kubeconform rejects unknown fields in Deployments and ScaledObjects"
else
  cat "$work/kc.log"; fail "kubeconform rejected the broken manifests for another reason"
fi

# --- compose.yaml, Dockerfile, settings names -------------------------------------------
if python3 "$repo/deploy/test/check_deploy.py" "$repo" "${rendered[@]}"; then
  pass "compose.yaml, Dockerfile and BACKFLOW__* settings (parsed; no Docker engine here)"
else
  fail "compose.yaml, Dockerfile or BACKFLOW__* settings"
fi

echo "deploy: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
