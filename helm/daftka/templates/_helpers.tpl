{{/*
Names, labels and shared snippets. Object names are "<fullname>-<component>"; every object carries
the standard app.kubernetes.io labels. The operator labels the replica pods it creates with
app.kubernetes.io/name=daftka and app.kubernetes.io/component=replica (operator/names.ts); the
NetworkPolicies and PodMonitors below select them by those two labels.
*/}}

{{- define "daftka.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "daftka.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else if contains (include "daftka.name" .) .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "daftka.name" .) | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "daftka.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "gateway") */}}
{{- define "daftka.selectorLabels" -}}
app.kubernetes.io/name: daftka
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "daftka.labels" -}}
{{ include "daftka.selectorLabels" . }}
helm.sh/chart: {{ include "daftka.chart" .ctx }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: daftka
{{- end -}}

{{/* The one image of all three programs (Dockerfile: replica, gateway and operator entrypoints). */}}
{{- define "daftka.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "daftka.operator.serviceAccountName" -}}
{{- printf "%s-operator" (include "daftka.fullname" .) -}}
{{- end -}}

{{- define "daftka.gateway.serviceAccountName" -}}
{{- printf "%s-gateway" (include "daftka.fullname" .) -}}
{{- end -}}

{{/*
Namespaces the operator watches (comma-separated): operator.watchNamespaces, or the release's own
when that list is empty and the operator is namespaced (the default). "" = every namespace, only
with operator.clusterScope and no list.
*/}}
{{- define "daftka.watchNamespaces" -}}
{{- if .Values.operator.watchNamespaces -}}
{{- join "," .Values.operator.watchNamespaces -}}
{{- else if not .Values.operator.clusterScope -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Namespaces that hold replica pods, for namespaced objects (NetworkPolicies): the watched ones, or (cluster scope, all namespaces) the release's and networkPolicy.replicaNamespaces. */}}
{{- define "daftka.replicaNamespaces" -}}
{{- $watched := include "daftka.watchNamespaces" . -}}
{{- if $watched -}}
{{- $watched -}}
{{- else -}}
{{- prepend .Values.networkPolicy.replicaNamespaces .Release.Namespace | uniq | join "," -}}
{{- end -}}
{{- end -}}

{{/* Pod and container security: non-root, read-only root filesystem, no capabilities (DESIGN §11). */}}
{{- define "daftka.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsUser }}
fsGroup: {{ .Values.securityContext.runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "daftka.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
{{- end -}}

{{/* NATS: the Secret holding each program's URL (with its credentials). */}}
{{- define "daftka.nats.credentialsSecret" -}}
{{- if .Values.nats.bundled.enabled -}}
{{- printf "%s-nats-clients" (include "daftka.fullname" .) -}}
{{- else -}}
{{- .Values.nats.external.credentialsSecret -}}
{{- end -}}
{{- end -}}

{{/* An env entry reading DAFTKA_NATS_URL from the credentials Secret: (dict "ctx" $ "key" "gateway-url") */}}
{{- define "daftka.nats.urlEnv" -}}
- name: DAFTKA_NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "daftka.nats.credentialsSecret" .ctx }}
      key: {{ .key }}
{{- end -}}

{{/*
A password that survives upgrades: the value already in the Secret when there is one (lookup
returns nothing under `helm template` and dry runs, which then render a fresh random one).
(dict "ctx" $ "secret" "<name>" "key" "<key>")
*/}}
{{- define "daftka.stablePassword" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .secret -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}

{{/*
An environment value as a string. Helm reads YAML numbers as float64, which `quote` prints as
1.048576e+06: whole numbers are printed as integers.
*/}}
{{- define "daftka.envValue" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- int64 . | toString -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}
