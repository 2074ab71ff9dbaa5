{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "barrage.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, prefixed with the chart name unless it already holds it. */}}
{{- define "barrage.fullname" -}}
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

{{- define "barrage.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "barrage.selectorLabels" -}}
app.kubernetes.io/name: {{ include "barrage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "barrage.labels" -}}
helm.sh/chart: {{ include "barrage.chart" . }}
{{ include "barrage.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: barrage
{{- end }}

{{/* A label map as the operator's flags take it: k=v,k=v (keys sorted). */}}
{{- define "barrage.labelList" -}}
{{- $pairs := list }}
{{- range $k, $v := . }}{{ $pairs = append $pairs (printf "%s=%s" $k (toString $v)) }}{{ end }}
{{- join "," $pairs }}
{{- end }}

{{/* The operator's service account: the one created, or the one named, or "default". */}}
{{- define "barrage.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "barrage.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "barrage.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{- define "barrage.runnerImage" -}}
{{- printf "%s:%s" .Values.runner.image.repository (default .Chart.AppVersion .Values.runner.image.tag | toString) }}
{{- end }}

{{/*
The operator's API rights on LoadTests and what it creates for them (least privilege).
Used by the ClusterRole (whole cluster) and by the per-namespace Roles alike.
*/}}
{{- define "barrage.rules" -}}
- apiGroups: ["barrage.dev"]
  resources: ["loadtests"]
  # create/delete: a ScheduledLoadTest's runs and its history limits
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: ["barrage.dev"]
  resources: ["loadtests/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["barrage.dev"]
  resources: ["scheduledloadtests"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["barrage.dev"]
  resources: ["scheduledloadtests/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete"]
# The tail of a setup pod's log: its progress lines (status.progress).
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create"]
# configmaps and secrets: get also reads what a LoadTest's spec.target.tls
# (caFrom, certFrom, keyFrom) and spec.output.prometheusRemoteWrite (the
# password, the token, tls) reference, checked before any pod starts.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch"]
# secrets: the agents' token and the records; patch because the setup pod's
# Role grants get and patch on its records Secret, and RBAC lets us grant
# only what we hold.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
# The setup pod's identity: a ServiceAccount with a Role on one Secret.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["create"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["create"]
{{- if .Values.networkPolicy.enabled }}
# Each LoadTest's runners' NetworkPolicy: created before the runners, patched
# (server-side apply) when it exists; never listed or watched.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "patch"]
{{- end }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
