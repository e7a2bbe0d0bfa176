{{/* Names, labels and the environment shared by the chart's templates. */}}

{{- define "backflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "backflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "backflow.controlPlane.fullname" -}}
{{- printf "%s-control-plane" (include "backflow.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "backflow.worker.fullname" -}}
{{- printf "%s-worker" (include "backflow.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "backflow.labels" -}}
app.kubernetes.io/name: {{ include "backflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "backflow.commonLabels" . }}
{{- end }}

{{/* Labels that are not selectors (pod templates add them to their selector labels). */}}
{{- define "backflow.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: backflow
{{- end }}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "worker"). */}}
{{- define "backflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "backflow.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "backflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "backflow.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "backflow.secretName" -}}
{{- default (include "backflow.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "backflow.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "backflow.grpcTarget" -}}
{{- printf "%s.%s.svc:%d" (include "backflow.controlPlane.fullname" .) .Release.Namespace (int .Values.controlPlane.ports.grpc) }}
{{- end }}

{{/*
A setting from the Backflow Secret: include with (dict "ctx" $ "env" "NAME" "key" "store"
"optional" false). In env mode a secretKeyRef; in file mode a ${file:…} reference that the
process resolves, so the value never enters the pod's environment.
*/}}
{{- define "backflow.secretEnv" -}}
{{- $values := .ctx.Values.secrets }}
{{- $key := index $values.keys .key -}}
- name: {{ .env }}
{{- if eq $values.mode "file" }}
  value: {{ printf "${file:%s/%s}" $values.mountPath $key | quote }}
{{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ include "backflow.secretName" .ctx }}
      key: {{ $key }}
{{- end }}
{{- end }}

{{/* The store URL as a secret reference, for `backflow migrate --store`. */}}
{{- define "backflow.storeRef" -}}
{{- if eq .Values.secrets.mode "file" }}
{{- printf "${file:%s/%s}" .Values.secrets.mountPath .Values.secrets.keys.store }}
{{- else }}
{{- print "${env:BACKFLOW__CONTROL_PLANE__STORE}" }}
{{- end }}
{{- end }}

{{/* The store URL as the control plane and `backflow migrate` receive it. */}}
{{- define "backflow.storeEnv" -}}
{{- include "backflow.secretEnv" (dict "ctx" . "env" "BACKFLOW__CONTROL_PLANE__STORE" "key" "store") }}
{{- end }}

{{/* Environment shared by every Backflow container: telemetry and logs. */}}
{{- define "backflow.commonEnv" -}}
- name: RUST_LOG
  value: {{ .ctx.Values.telemetry.logLevel | quote }}
{{- with .ctx.Values.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "backflow-%s" $.component | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $.ctx.Values.telemetry.sampler | quote }}
{{- with $.ctx.Values.telemetry.samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "k8s.pod.name=$(K8S_POD_NAME),k8s.namespace.name=$(K8S_NAMESPACE_NAME),service.version={{ default $.ctx.Chart.AppVersion $.ctx.Values.image.tag }}"
{{- end }}
{{- end }}

{{/* The object store's settings that are not secret, on every Backflow container. */}}
{{- define "backflow.snapshotsEnv" -}}
{{- range $name, $value := .Values.snapshots.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* Whether Backflow containers get an envFrom list. */}}
{{- define "backflow.hasEnvFrom" -}}
{{- if or .Values.snapshots.existingSecret .Values.connectionSecrets.envFromSecrets }}true{{ end }}
{{- end }}

{{/* Secrets whose keys become environment variables: the object store's, then the connections'. */}}
{{- define "backflow.envFrom" -}}
{{- with .Values.snapshots.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- range .Values.connectionSecrets.envFromSecrets }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{/* Volume mounts shared by both components. */}}
{{- define "backflow.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if eq .Values.secrets.mode "file" }}
- name: backflow-secrets
  mountPath: {{ .Values.secrets.mountPath }}
  readOnly: true
{{- end }}
{{- range .Values.connectionSecrets.fileSecrets }}
- name: {{ printf "conn-%s" . | trunc 63 | trimSuffix "-" }}
  mountPath: {{ printf "/etc/backflow/connections/%s" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Pod volumes: include with (dict "ctx" $ "component" "worker"). Workers get only the worker token. */}}
{{- define "backflow.volumes" -}}
{{- $values := .ctx.Values -}}
- name: tmp
  emptyDir: {}
{{- if eq $values.secrets.mode "file" }}
- name: backflow-secrets
  secret:
    secretName: {{ include "backflow.secretName" .ctx }}
    defaultMode: 0440
    {{- if eq .component "worker" }}
    items:
      - key: {{ $values.secrets.keys.workerToken }}
        path: {{ $values.secrets.keys.workerToken }}
    {{- end }}
{{- end }}
{{- range $values.connectionSecrets.fileSecrets }}
- name: {{ printf "conn-%s" . | trunc 63 | trimSuffix "-" }}
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/* Which autoscaler the workers get: keda, hpa or none (values.schema.json checks the mode). */}}
{{- define "backflow.worker.autoscaler" -}}
{{- $mode := .Values.worker.autoscaling.mode }}
{{- if eq $mode "auto" }}
{{- if .Capabilities.APIVersions.Has "keda.sh/v1alpha1" }}keda{{ else }}hpa{{ end }}
{{- else }}
{{- $mode }}
{{- end }}
{{- end }}

{{/* Checks what values.schema.json cannot: values that depend on each other. */}}
{{- define "backflow.validate" -}}
{{- if and (not .Values.secrets.existingSecret) (not .Values.secrets.store) }}
{{- fail "secrets.store (the PostgreSQL URL of the state store) is required unless secrets.existingSecret names a Secret holding it" }}
{{- end }}
{{- if and .Values.secrets.store (not (regexMatch "^postgres(ql)?://" .Values.secrets.store)) }}
{{- fail "secrets.store must be a postgres:// URL: replicas share the store, and KEDA's scaler reads it" }}
{{- end }}
{{- /* The messages never quote the URL: it could hold credentials. */}}
{{- if not .Values.snapshots.url }}
{{- fail "snapshots.url (s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX) is required: every pod reads and writes the snapshots there" }}
{{- end }}
{{- if not (regexMatch "^(s3|gs|az|azure)://[A-Za-z0-9._-]+(/[^@?#]*)?$" .Values.snapshots.url) }}
{{- fail "snapshots.url must be s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or az://CONTAINER/PREFIX, without credentials (those go in the Secret named by snapshots.existingSecret)" }}
{{- end }}
{{- end }}
